"""Metric protocols: everything around a metric's formula that decides the published number.

The field's code bases compute the same formulas (matched on identical inputs) under different
protocols: which samples count, how COUT orders and integrates, how sFID splits, how PF steps.
A protocol is a name, the rule for what counts as a successful counterfactual, and per metric
the options that metric declares (``Metric.options``; each metric validates its own). The other
code bases' protocols are registered in ``cfbench/catalog.py`` and defined in
``metrics/protocols.py``.

Which rows a metric is computed over is decided here and nowhere else (``select``): a metric's
``rows`` option ("all", "correct": originals classified right, "flipped": successful
counterfactuals), and a ``success`` column that metrics comparing successful and other
counterfactuals (FR, ACE's FID) read instead of re-deriving it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

SUCCESS_RULES = ("target", "ace")


@dataclass(frozen=True)
class Protocol:
    name: str = "cfbench"
    # what counts as a success: "target" (classified as the requested target) | "ace" (as
    # ACE's main.py: the target for an original classified right, its own label otherwise)
    success: str = "target"
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)  # metric -> its options

    def options(self, metric: str) -> dict[str, Any]:
        """The options this protocol sets for ``metric`` (the metric fills in its defaults)."""
        return dict(self.metrics.get(metric, {}))

    def select(self, metric: str, rows: pd.DataFrame) -> pd.DataFrame:
        """The rows ``metric`` is computed over under this protocol, with their ``success``."""
        rows = rows.assign(success=self.successful(rows))
        subset = self.metrics.get(metric, {}).get("rows", "all")
        if subset == "correct":
            return rows[rows["pred_before"] == rows["source"]]
        if subset == "flipped":
            return rows[rows["success"]]
        return rows

    def successful(self, rows: pd.DataFrame) -> np.ndarray:
        """Per row, whether its counterfactual succeeded under this protocol."""
        flipped = rows["flipped"].to_numpy(bool)
        if self.success == "ace":
            right = (rows["pred_before"] == rows["source"]).to_numpy(bool)
            return np.where(right, flipped, (rows["pred_after"] == rows["source"]).to_numpy(bool))
        return flipped

    def describe(self) -> dict:
        return {"name": self.name, "success": self.success, "metrics": self.metrics}


CFBENCH = Protocol()
