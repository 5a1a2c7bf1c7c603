"""The metric protocols of other code bases (registered in ``cfbench/catalog.py``).

ace      ACE / FastDiME (``eval_utils/cout_metrics.py``, ``compute_fid``; FVA, FS, MNAC and CD over
         the successful counterfactuals, as ``compute_FVA.py``, ``compute_MNAC.py`` and
         ``compute_CD.py`` walk ``CC|IC/CCF``): FR, S3 and COUT over
         originals the classifier gets right (for a class pair, the target is then the other
         class, as ACE's 1 - prediction); COUT orders by (v - min) / (max - min) of the
         channel-summed
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

from cfbench.api.protocol import Protocol

ACE = Protocol(
    "ace",
    subsets={
        "FR": "correct",
        "S3": "correct",
        "COUT": "correct",
        "FVA": "flipped",
        "FS": "flipped",
        "MNAC": "flipped",
        "CD": "flipped",
    },
    cout_rule="ace",
    sfid_repeats=1,
    sfid_seed=0,
    sfid_counterfactuals="flipped",
)
SLCF = Protocol(
    "slcf", subsets={"COUT": "correct"}, cout_average="directions", sfid_seed=2025, pf_rule="slcf"
)
