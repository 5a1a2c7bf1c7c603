"""The metric protocols of other code bases (registered in ``cfbench/catalog.py``): per metric,
the options its own module declares.

ace      ACE / FastDiME (``eval_utils/cout_metrics.py``, ``compute_FID.sh``, ``compute_sFID.sh``;
         FVA, FS, MNAC and CD over the successful counterfactuals, as ``compute_FVA.py``,
         ``compute_MNAC.py`` and ``compute_CD.py`` walk ``CC|IC/CCF``): FR over all originals as
         ``main.py`` counts it (success: the other class for an original classified right, its own
         label for one classified wrong; cfbench asked every method for the other class of the
         label, so on a misclassified original the method was asked for a different edit than
         ACE's); FID of all originals against the successful counterfactuals (``compute_FID.sh``
         copies ``CC/CCF/CF`` and ``IC/CCF/CF``); S3 and COUT over originals the classifier gets
         right (for a class pair, the target is then the other class, as ACE's 1 - prediction);
         COUT orders by (v - min) / (max - min) of the channel-summed |x_cf - x| with a non-stable
         sort and integrates the last partial step as a full one (the curve ends at
         1 + (ceil(N/s) s - N)/N); sFID: one half-split, the counterfactual halves holding only
         successful counterfactuals, an odd middle sample dropped, the mean of the two cross-FIDs
         (``compute_sFID.sh`` prints both and leaves averaging to its user; it shuffles unseeded,
         here seed 0, so a rerun gives the same number). GCD's Table 1 was scored with these
         scripts (GCD's code computes no metric), so ``--protocol ace`` is GCD's protocol too.
slcf     SLCF's evaluation (``slc/evaluation``): FR against the other class of the label over all
         images; COUT over correctly classified originals resized to 224 px (its
         ``img_transform(224)``), the two directions' means averaged unless the classifier is
         binary (``if not is_binary_dataset``); S3 over all pairs; sFID: 10 half-splits drawn by
         Python's ``random.shuffle`` seeded 2025, all pairs, 20 FIDs averaged; PF: Quantus' raw
         AUC (unit spacing) with ``features_in_step`` = H (224 at 224 px: 672 steps).
"""

from __future__ import annotations

from cfbench.api.protocol import Protocol

_SUCCESSFUL = {"rows": "flipped"}
ACE = Protocol(
    "ace",
    success="ace",
    metrics={
        "S3": {"rows": "correct"},
        "COUT": {"rows": "correct", "rule": "ace"},
        "FID": {"counterfactuals": "flipped"},
        "sFID": {"repeats": 1, "seed": 0, "counterfactuals": "flipped"},
        "FVA": _SUCCESSFUL,
        "FS": _SUCCESSFUL,
        "MNAC": _SUCCESSFUL,
        "CD": _SUCCESSFUL,
    },
)
SLCF = Protocol(
    "slcf",
    metrics={
        "COUT": {"rows": "correct", "average": "directions", "size": 224},
        "sFID": {"seed": 2025, "shuffle": "python"},
        "PF": {"rule": "slcf"},
    },
)
