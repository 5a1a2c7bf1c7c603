"""Counterfactual methods, one module (or small package) per family; each is registered by name
in ``cfbench/catalog.py``, where a preset is a line with fixed hyperparameters."""
