"""SLCF, Simple Localized Counterfactuals: the method in ``method.py``, the pieces of an edit
(edit spaces, goals, the per-sample optimisation of a stage) in ``edit.py``, its hyperparameters
in ``params.py``."""

from cfbench.methods.slcf.edit import LatentEditSpace, PixelEditSpace, Trajectory
from cfbench.methods.slcf.method import SLCF

__all__ = ["SLCF", "LatentEditSpace", "PixelEditSpace", "Trajectory"]
