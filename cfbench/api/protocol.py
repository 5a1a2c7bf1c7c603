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

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Protocol:
    name: str = "cfbench"
    # metric -> "all" | "correct" (originals classified right) | "flipped" (successful CFs)
    subsets: dict[str, str] = field(default_factory=dict)
    # what counts as a success: "target" (classified as the requested target) | "ace" (as
    # ACE's main.py: the target for an original classified right, its own label otherwise)
    success: str = "target"
    cout_rule: str = "cfbench"  # "cfbench" | "ace"
    # "samples" | "directions" (the mean of the per-direction means, where the classifier has
    # more than two classes; a binary classifier's samples are averaged)
    cout_average: str = "samples"
    cout_size: int | None = None  # COUT on images resized to this side (None: as generated)
    sfid_repeats: int = 10
    sfid_seed: int = 0
    sfid_shuffle: str = "numpy"  # "numpy" (default_rng permutation) | "python" (random.shuffle)
    sfid_counterfactuals: str = "all"  # "all" | "flipped"
    fid_counterfactuals: str = "all"  # "all" | "flipped" (FID: all originals against these)
    pf_rule: str = "cfbench"  # "cfbench" | "slcf"

    def select(self, metric: str, rows: pd.DataFrame) -> pd.DataFrame:
        """The rows ``metric`` is computed over under this protocol."""
        subset = self.subsets.get(metric, "all")
        if subset == "correct":
            return rows[rows["pred_before"] == rows["source"]]
        if subset == "flipped":
            return rows[self.successful(rows)]
        return rows

    def successful(self, rows: pd.DataFrame) -> np.ndarray:
        """Per row, whether its counterfactual succeeded under this protocol."""
        flipped = rows["flipped"].to_numpy(bool)
        if self.success == "ace":
            right = (rows["pred_before"] == rows["source"]).to_numpy(bool)
            return np.where(right, flipped, (rows["pred_after"] == rows["source"]).to_numpy(bool))
        return flipped

    def describe(self) -> dict:
        return {
            "name": self.name,
            "subsets": self.subsets,
            "success": self.success,
            "fid_counterfactuals": self.fid_counterfactuals,
            "cout_rule": self.cout_rule,
            "cout_average": self.cout_average,
            "cout_size": self.cout_size,
            "sfid": {
                "repeats": self.sfid_repeats,
                "seed": self.sfid_seed,
                "shuffle": self.sfid_shuffle,
                "counterfactuals": self.sfid_counterfactuals,
            },
            "pf_rule": self.pf_rule,
        }


CFBENCH = Protocol()
