"""Metric protocols: everything around a metric's formula that decides the published number.

The field's code bases compute the same formulas (matched on identical inputs) under different
protocols: which samples count, how COUT orders and integrates, how sFID splits, how PF steps.
A protocol pins all of it, per source of published numbers (``--protocol``, default cfbench):

cfbench  every metric over all samples; COUT orders pixels by the channel sum of the 8-bit
         changes (integers, so rounding cannot reorder ties) with a stable sort, integrates over
         [0, 1] and averages all samples; sFID: 10 half-splits (seed 0), every pair; PF: Quantus'
         curve with the step giving at least 48 steps, its AUC divided by the number of intervals.
ace      ACE / FastDiME (``eval_utils/cout_metrics.py``, ``compute_fid``): FR, S3 and COUT over
         originals the classifier gets right (for a class pair, the target is then the other
         class, as ACE's 1 - prediction); COUT orders by (v - min) / (max - min) of the channel-summed
         |x_cf - x| with a non-stable sort and integrates the last partial step as a full one
         (the curve ends at 1 + (ceil(N/s) s - N)/N); sFID: one half-split, the counterfactual
         halves holding only successful counterfactuals, the mean of the two cross-FIDs (ACE
         splits unseeded; here seed 0, so a rerun gives the same number).
slcf     SLCF's evaluation (``slc/evaluation``): FR against the other class of the label over all
         images; COUT averages the two directions' means over correctly classified originals; S3
         over all pairs; sFID: 10 half-splits seeded 2025, all pairs, 20 FIDs averaged; PF:
         Quantus' raw AUC (unit spacing) with ``features_in_step`` = H (224 at 224 px: 672 steps).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from cfbench.errors import UserError


@dataclass(frozen=True)
class Protocol:
    name: str
    subsets: dict[str, str] = field(default_factory=dict)   # metric -> "all" | "correct"
    cout_rule: str = "cfbench"           # "cfbench" | "ace"
    cout_average: str = "samples"        # "samples" | "directions" (mean of the per-direction means)
    sfid_repeats: int = 10
    sfid_seed: int = 0
    sfid_counterfactuals: str = "all"    # "all" | "flipped"
    pf_rule: str = "cfbench"             # "cfbench" | "slcf"

    def select(self, metric: str, rows: pd.DataFrame) -> pd.DataFrame:
        """The rows ``metric`` is computed over under this protocol."""
        if self.subsets.get(metric, "all") == "correct":
            return rows[rows["pred_before"] == rows["source"]]
        return rows

    def describe(self) -> dict:
        return {"name": self.name, "subsets": self.subsets, "cout_rule": self.cout_rule,
                "cout_average": self.cout_average, "sfid": {"repeats": self.sfid_repeats, "seed": self.sfid_seed,
                                                            "counterfactuals": self.sfid_counterfactuals},
                "pf_rule": self.pf_rule}


PROTOCOLS = {
    "cfbench": Protocol("cfbench"),
    "ace": Protocol("ace", subsets={"FR": "correct", "S3": "correct", "COUT": "correct"}, cout_rule="ace",
                    sfid_repeats=1, sfid_seed=0, sfid_counterfactuals="flipped"),
    "slcf": Protocol("slcf", subsets={"COUT": "correct"}, cout_average="directions", sfid_seed=2025,
                     pf_rule="slcf"),
}
CFBENCH = PROTOCOLS["cfbench"]


def protocol(name: str) -> Protocol:
    if name not in PROTOCOLS:
        raise UserError(f"Unknown metric protocol '{name}': choose one of {', '.join(PROTOCOLS)} "
                        "(see metrics/protocols.py for what each pins).")
    return PROTOCOLS[name]
