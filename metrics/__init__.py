"""Metrics, one module per family; each metric's class holds its facts (see ``cfbench.api.metric``)
and is registered by its metrics.csv column in ``cfbench/catalog.py``."""
