"""Cost of producing a counterfactual: classifier evaluations and wall-clock seconds."""

from __future__ import annotations

from cfbench.api.metric import Metric


class _Amortised(Metric):
    """A per-sample cost plus the sample's share of any run-level fit (``fit_<what>``)."""

    fit_column: str

    def values(self, rows):
        own = super().values(rows)
        return (
            own + rows[self.fit_column].fillna(0).to_numpy(dtype=float)
            if self.fit_column in rows
            else own
        )


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
    interval = None  # measured per batch, so samples are not independent draws
    # tolerance None: wall-clock time depends on the machine; regress checks it only when asked
