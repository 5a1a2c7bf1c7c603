"""Cost of producing a counterfactual: classifier evaluations and wall-clock seconds."""
from __future__ import annotations

from cfbench.metrics.base import Metric


class ClassifierEvaluations(Metric):
    """nfe: classifier forward passes per counterfactual, as the method reports them."""

    name = "nfe"
    column = "nfe"


class SecondsPerCounterfactual(Metric):
    """sec_per_cf: generation wall time of a batch divided by its size."""

    name = "sec_per_cf"
    column = "seconds"
