"""Tasks: the synthetic worlds and their tasks (offline, shipped assets, ground truth), real-data
tasks, and the user's own tasks declared in TOML files (``task_file.py``). Registered in
``cfbench/catalog.py``."""
