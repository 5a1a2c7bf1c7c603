"""Metric protocols: everything around a metric's formula that decides the published number.

The field's code bases compute the same formulas (matched on identical inputs) under different
protocols: which samples count, how COUT orders and integrates, how sFID splits, how PF steps.
A protocol pins all of it, per source of published numbers (``--protocol``; the protocols of
other code bases are registered in ``cfbench/catalog.py`` and defined in ``metrics/protocols.py``).
A metric receives its protocol when it is built.

``Protocol()`` is cfbench's own: every metric over all samples; COUT orders pixels by the channel
sum of the 8-bit changes (integers, so rounding cannot reorder ties) with a stable sort,
integrates over [0, 1] and averages all samples; sFID: 10 half-splits (seed 0), every pair; PF:
Quantus' curve with the step giving at least 48 steps, its AUC divided by the number of intervals.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd


@dataclass(frozen=True)
class Protocol:
    name: str = "cfbench"
    # metric -> "all" | "correct" (originals classified right) | "flipped" (successful CFs)
    subsets: dict[str, str] = field(default_factory=dict)
    cout_rule: str = "cfbench"  # "cfbench" | "ace"
    cout_average: str = "samples"  # "samples" | "directions" (mean of the per-direction means)
    sfid_repeats: int = 10
    sfid_seed: int = 0
    sfid_counterfactuals: str = "all"  # "all" | "flipped"
    pf_rule: str = "cfbench"  # "cfbench" | "slcf"

    def select(self, metric: str, rows: pd.DataFrame) -> pd.DataFrame:
        """The rows ``metric`` is computed over under this protocol."""
        subset = self.subsets.get(metric, "all")
        if subset == "correct":
            return rows[rows["pred_before"] == rows["source"]]
        if subset == "flipped":
            return rows[rows["flipped"].astype(bool)]
        return rows

    def describe(self) -> dict:
        return {
            "name": self.name,
            "subsets": self.subsets,
            "cout_rule": self.cout_rule,
            "cout_average": self.cout_average,
            "sfid": {
                "repeats": self.sfid_repeats,
                "seed": self.sfid_seed,
                "counterfactuals": self.sfid_counterfactuals,
            },
            "pf_rule": self.pf_rule,
        }


CFBENCH = Protocol()
