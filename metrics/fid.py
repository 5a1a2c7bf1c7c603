"""FID and sFID between a method's counterfactuals and the originals, through torch-fidelity.

FID compares all originals with all counterfactuals. sFID (as in ACE and its successors) removes
the advantage of a method that barely edits: the pairs are split at random into two halves,
FID(originals of half 1, counterfactuals of half 2) and FID(originals of half 2, counterfactuals
of half 1) are computed, 10 times with a fixed seed, and all 20 are averaged. ``sFID_ci`` holds the
spread of the 10 repetitions (half the 2.5-97.5 percentile range); FID itself has no interval.

Features come from the task's ``fid_features`` component, a torch-fidelity feature extractor
(``components/fid_features.py``: Inception-v3 on real tasks, the synthetic SimSiam as a recorded
stand-in, registered with torch-fidelity when the component loads). Images are streamed from the
run directory in batches, so memory holds only the
feature matrices (n x d), never the images of a whole run.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import torch

from cfbench.api.metric import Metric, Option
from cfbench.results import load_pngs

KEY_METRIC_FID = "frechet_inception_distance"  # torch-fidelity's result key
SFID_REPEATS = 10
SFID_SEED = 0
STREAM_BATCH = 64


@functools.lru_cache(maxsize=2)
def extractor(name: str, weights: str, cuda: bool):
    from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY
    from torch_fidelity.utils import create_feature_extractor

    return create_feature_extractor(
        name,
        [FEATURE_EXTRACTORS_REGISTRY[name].get_default_feature_layer_for_metric("fid")],
        cuda=cuda,
        feature_extractor_weights_path=weights,
        verbose=False,
    )


@functools.lru_cache(maxsize=8)
def folder_features(
    name: str, weights: str, cuda: bool, folder: str, ids: tuple[str, ...]
) -> np.ndarray:
    """(n, d) features of the PNGs ``folder/<id>.png``, read and embedded STREAM_BATCH at a time."""
    net = extractor(name, weights, cuda)
    chunks = []
    for start in range(0, len(ids), STREAM_BATCH):
        images = load_pngs(Path(folder), list(ids[start : start + STREAM_BATCH]))
        batch = torch.round(images * 255).to(torch.uint8)
        with torch.no_grad():
            (feats,) = net(batch.cuda() if cuda else batch)
        chunks.append(feats.double().cpu().numpy())
    return np.concatenate(chunks)


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """FID between two feature sets with torch-fidelity's statistics and distance (its warning on
    a singular covariance is silenced: the run says so once, ``_FeatureDistance.features``)."""
    import warnings

    from torch_fidelity.metric_fid import fid_features_to_statistics, fid_statistics_to_metric

    stats = [fid_features_to_statistics(torch.from_numpy(np.ascontiguousarray(f))) for f in (a, b)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(fid_statistics_to_metric(*stats, verbose=False)[KEY_METRIC_FID])


def split_orders(n: int, repeats: int, seed: int, shuffle: str = "numpy") -> list[np.ndarray]:
    """The ``repeats`` random orders of ``n`` samples the halves are cut from: numpy's seeded
    permutations, or Python's ``random.shuffle`` of a fresh ``list(range(n))`` per repeat from one
    seeded ``random.Random`` (the SLCF evaluation's generator)."""
    if shuffle == "python":
        import random

        rng = random.Random(seed)
        orders = []
        for _ in range(repeats):
            order = list(range(n))
            rng.shuffle(order)
            orders.append(np.array(order))
        return orders
    rng = np.random.default_rng(seed)
    return [rng.permutation(n) for _ in range(repeats)]


def split_fid(
    originals: np.ndarray,
    counterfactuals: np.ndarray,
    repeats: int = SFID_REPEATS,
    seed: int = SFID_SEED,
    shuffle: str = "numpy",
) -> np.ndarray:
    """(repeats,) sFID values: each the mean of the two cross-half FIDs of one random split."""
    n = len(originals)
    values = []
    for perm in split_orders(n, repeats, seed, shuffle):
        one, two = perm[: n // 2], perm[n // 2 :]
        values.append(
            (
                frechet_distance(originals[one], counterfactuals[two])
                + frechet_distance(originals[two], counterfactuals[one])
            )
            / 2
        )
    return np.array(values)


COUNTERFACTUALS = Option(
    "all", ("all", "flipped"), doc="counterfactuals compared: all, or the successful ones (ACE)"
)


class _FeatureDistance(Metric):
    higher_is_better = False
    tolerance = (0.05, 0.10)
    level = "set"
    interval = None
    min_samples = 2
    model = "fid_features"
    needs_samples_over_dims = True

    def provenance(self) -> dict:
        return {**super().provenance(), "feature_dims": self.task.component(self.model).dims}

    def features(self, run, method, rows) -> tuple[np.ndarray, np.ndarray]:
        ids = tuple(rows["sample_id"])
        source = self.task.component("fid_features")
        cuda = self.device.type == "cuda"
        found = tuple(
            folder_features(source.name, source.weights, cuda, str(folder), ids)
            for folder in (run.images(), run.images(method))
        )
        if self.samples_used(len(ids)) < found[0].shape[1]:
            self.notes.append(
                f"FID and sFID rest on fewer samples than their {found[0].shape[1]} feature "
                "dimensions: the covariances are singular and the values biased by n; tables mark "
                "them and rank nothing on them (KID and precision do not need as many)."
            )
        return found


class FID(_FeatureDistance):
    """FID: all originals against all counterfactuals of a method (against the successful ones
    only with ``counterfactuals="flipped"``, as ACE's compute_FID.sh)."""

    name = "FID"
    options = {"counterfactuals": COUNTERFACTUALS}

    def summarize(self, run, method, rows):
        if len(rows) < self.min_samples:
            return None, None
        originals, counterfactuals = self.features(run, method, rows)
        if self.rules["counterfactuals"] == "flipped":
            counterfactuals = counterfactuals[rows["success"].to_numpy(bool)]
            if len(counterfactuals) < self.min_samples:
                return None, None
        return frechet_distance(originals, counterfactuals), None


class SplitFID(_FeatureDistance):
    """sFID: cross-half FIDs over 10 seeded random splits; the CI column is their spread."""

    name = "sFID"
    interval = "splits"
    min_samples = 4

    @staticmethod
    def samples_used(n: int) -> int:
        return n // 2

    options = {
        "repeats": Option(10, kind=int, doc="half-splits drawn"),
        "seed": Option(0, kind=int, doc="seed of the splits"),
        "shuffle": Option(
            "numpy", ("numpy", "python"), doc="default_rng permutation, or random.shuffle"
        ),
        "counterfactuals": COUNTERFACTUALS,
    }

    def summarize(self, run, method, rows):
        if len(rows) < self.min_samples:
            return None, None
        originals, counterfactuals = self.features(run, method, rows)
        r = self.rules
        # ACE: only successful counterfactuals in the CF halves
        if r["counterfactuals"] == "flipped":
            return self._flipped_only(originals, counterfactuals, rows["success"].to_numpy(bool))
        values = split_fid(originals, counterfactuals, r["repeats"], r["seed"], r["shuffle"])
        lo, hi = np.percentile(values, [2.5, 97.5])
        return float(values.mean()), float((hi - lo) / 2) if len(values) > 1 else None

    def _flipped_only(self, originals, counterfactuals, flipped):
        """One seeded half-split; the counterfactual halves keep their successful members."""
        (perm,) = split_orders(len(originals), 1, self.rules["seed"], self.rules["shuffle"])
        half = len(perm) // 2  # compute_sFID.sh: head and tail of N/2 each, an odd middle dropped
        one, two = perm[:half], perm[len(perm) - half :]
        cf_one, cf_two = one[flipped[one]], two[flipped[two]]
        if min(len(cf_one), len(cf_two)) < 2:
            return None, None
        return (
            frechet_distance(originals[one], counterfactuals[cf_two])
            + frechet_distance(originals[two], counterfactuals[cf_one])
        ) / 2, None
