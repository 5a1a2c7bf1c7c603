"""Face metrics, as ACE's evaluation scripts compute them (GCD and CECAS report the same):

- FVA (``compute_FVA.py``): share of (original, counterfactual) pairs whose identity features have
  a cosine similarity above 0.5; FS (GCD's Table 1): the mean of that similarity.
- MNAC (``compute_MNAC.py``): per pair, the number of attributes whose oracle prediction (> 0.5)
  differs between original and counterfactual, summed over every attribute (the query too).
- OFR (``metrics/oracle.py``; not in ACE's scripts) reads the same oracle's query attribute.
- CD (``compute_CD.py``, ``diff=True``, ``remove_unchanged_oracle=False``): with deltas = oracle
  predictions of the counterfactuals minus those of the originals, the correlation of each
  attribute's delta with the query attribute's delta (0 where undefined), and CD = the sum over
  attributes of its absolute difference from the dataset's correlation with the query attribute
  (``get_correlations``: the annotations' Pearson correlations).

The identity features and the oracle are task components (``face_identity``,
``attribute_oracle``), each with its own preprocessing inside; the dataset correlations come from
the task (``Task.attribute_correlations``). Which pairs count is the protocol's: all under
``cfbench``, the successful counterfactuals under ``ace`` (its scripts walk ``CC|IC/CCF``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from torch.nn import functional as F

from cfbench.api.metric import Metric, SampleContext
from cfbench.stats import RESAMPLES, SEED

SAME_PERSON = 0.5  # compute_FVA.py: ``dist > 0.5``
PRESENT = 0.5  # compute_MNAC.py / compute_CD.py: ``d > 0.5``


def identity_similarity(embed, x: torch.Tensor, x_cf: torch.Tensor) -> torch.Tensor:
    """(B,) cosine similarity of the identity features of x and x_cf."""
    with torch.no_grad():
        return F.cosine_similarity(embed(x), embed(x_cf), dim=1)


class FaceVerification(Metric):
    """FVA: the counterfactual is still the same person (cosine similarity above 0.5)."""

    name = "FVA"
    model = "face_identity"
    higher_is_better = True
    percent, decimals, tolerance = True, 1, (0.05, 0.0)

    def per_sample(self, ctx: SampleContext):
        sim = identity_similarity(
            self.task.component(self.model), ctx.batch.images, ctx.counterfactuals.images
        )
        return {"FVA": (sim > SAME_PERSON).float()}


class FaceSimilarity(Metric):
    """FS: mean cosine similarity of identity features of original and counterfactual."""

    name = "FS"
    model = "face_identity"
    higher_is_better = True
    tolerance = (0.03, 0.0)

    def per_sample(self, ctx: SampleContext):
        return {
            "FS": identity_similarity(
                self.task.component(self.model), ctx.batch.images, ctx.counterfactuals.images
            )
        }


def oracle_predictions(oracle, x: torch.Tensor, x_cf: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-sample attribute predictions (0/1 as floats, B x A) of the originals and the CFs."""
    with torch.no_grad():
        return {
            "oracle_before": (oracle(x) > PRESENT).float(),
            "oracle_after": (oracle(x_cf) > PRESENT).float(),
        }


class AttributesChanged(Metric):
    """MNAC: the number of attributes whose oracle prediction the edit changed."""

    name = "MNAC"
    model = "attribute_oracle"
    higher_is_better = False
    decimals, tolerance = 2, (0.3, 0.0)

    def per_sample(self, ctx: SampleContext):
        pred = oracle_predictions(
            self.task.component(self.model), ctx.batch.images, ctx.counterfactuals.images
        )
        return {"MNAC": (pred["oracle_before"] != pred["oracle_after"]).sum(1).float(), **pred}


def correlation_difference(
    before: np.ndarray, after: np.ndarray, dataset: np.ndarray, query: int
) -> float:
    """CD of N pairs of oracle predictions (N x A, 0/1) against the dataset's correlations (A,)."""
    deltas = after.astype(float) - before.astype(float)
    ours = np.zeros(deltas.shape[1])
    for i in range(deltas.shape[1]):
        with np.errstate(invalid="ignore", divide="ignore"):
            cc = np.corrcoef(deltas[:, i], deltas[:, query])
        ours[i] = 0 if np.any(np.isnan(cc)) else cc[0, 1]
    return float(np.abs(ours - dataset).sum())


class CorrelationDifference(Metric):
    """CD: how far the attribute changes' correlations with the query's change are from the
    dataset's correlations. Set-level; its interval is a bootstrap over pairs."""

    name = "CD"
    model = "attribute_oracle"
    higher_is_better = False
    level = "set"
    decimals, tolerance = 2, (0.5, 0.0)

    def unavailable(self):
        if self.task.attribute_correlations() is None:
            return f"task '{self.task.name}' has no attribute annotations to correlate with"
        return super().unavailable()

    def per_sample(self, ctx: SampleContext):
        return oracle_predictions(
            self.task.component(self.model), ctx.batch.images, ctx.counterfactuals.images
        )

    def summarize(self, run, method: str, rows: pd.DataFrame):
        if len(rows) < 2:
            return None, None
        _, dataset, query = self.task.attribute_correlations()
        before, after = (np.stack(rows[c].to_numpy()) for c in ("oracle_before", "oracle_after"))
        dataset = np.asarray(dataset, dtype=float)
        value = correlation_difference(before, after, dataset, query)
        rng = np.random.default_rng(SEED)
        draws = [
            correlation_difference(before[idx], after[idx], dataset, query)
            for idx in rng.integers(0, len(rows), (RESAMPLES // 5, len(rows)))
        ]
        lo, hi = np.percentile(draws, [2.5, 97.5])
        return value, float((hi - lo) / 2)
