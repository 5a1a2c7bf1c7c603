"""GCD, Global Counterfactual Directions (Sobieski & Biecek, ECCV 2024): the method reads as the
paper's algorithm in ``method.py``; its proxy (Alg. 1-2) and BB-LIG (Alg. 4) are modules of their
own, and its hyperparameters are in ``params.py``."""

from cfbench.methods.gcd.method import GCD

__all__ = ["GCD"]
