"""RCSB, region-constrained counterfactuals: the method and its regions in ``method.py``, its
guided sampling on I2SB's bridge in ``bridge.py``, the paper's SGM ablation in ``sgm.py``."""

from cfbench.methods.rcsb.method import RCSB

__all__ = ["RCSB"]
