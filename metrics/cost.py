"""Cost of producing a counterfactual: classifier evaluations and wall-clock seconds."""
from __future__ import annotations

from cfbench.metrics.base import Metric


class ClassifierEvaluations(Metric):
    """nfe: classifier forward passes per counterfactual, as the method reports them."""

    name = "nfe"
    column = "nfe"
    decimals, tolerance = 1, (0.0, 0.25)


class SecondsPerCounterfactual(Metric):
    """sec_per_cf: generation wall time of a batch divided by its size."""

    name = "sec_per_cf"
    column = "seconds"
    decimals = 2
    interval = None          # measured per batch, so samples are not independent draws
    # tolerance None: wall-clock time depends on the machine; regress checks it only when asked
