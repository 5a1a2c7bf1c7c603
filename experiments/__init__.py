"""Experiments: studies that are not a single run (Table-4 localisation, trait isolation, ...).

Each reuses core's pieces (registries, the runner and batch loop with resume and progress, the
results format) and uses methods, metrics and tasks only through the registries. An experiment is
one module with an ``add_command(subparsers)`` that adds its ``cfbench`` command, registered in
``cfbench/catalog.py`` (``EXPERIMENTS``, and ``TABLES`` for a paper table it makes); the CLI imports
it only when its command runs."""
