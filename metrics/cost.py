"""Cost of producing a counterfactual: classifier evaluations and wall-clock seconds."""
from __future__ import annotations

import numpy as np

from cfbench.metrics.base import Metric
from cfbench.metrics.stats import bootstrap_half_width


class _Amortised(Metric):
    """A per-sample cost plus the sample's share of any run-level fit (``fit_<what>``)."""

    fit_column: str

    def summarize(self, run, method, rows):
        values = rows[self.column].to_numpy(dtype=float)
        if self.fit_column in rows:
            values = values + rows[self.fit_column].fillna(0).to_numpy(dtype=float)
        values = values[np.isfinite(values)]
        if len(values) == 0:
            return None, None
        return float(np.mean(values)), bootstrap_half_width(values) if self.interval else None


class ClassifierEvaluations(_Amortised):
    """nfe: classifier forward passes per counterfactual, as the method reports them, plus the
    sample's share of a global method's fit."""

    name = "nfe"
    column, fit_column = "nfe", "fit_nfe"
    decimals, tolerance = 1, (0.0, 0.25)


class SecondsPerCounterfactual(_Amortised):
    """sec_per_cf: generation wall time of a batch divided by its size, plus the sample's share
    of a global method's fit."""

    name = "sec_per_cf"
    column, fit_column = "seconds", "fit_seconds"
    decimals = 2
    interval = None          # measured per batch, so samples are not independent draws
    # tolerance None: wall-clock time depends on the machine; regress checks it only when asked
