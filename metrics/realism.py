"""Realism at the sizes people run (16-64 counterfactuals), against a large reference set.

FID at n = 16-64 rests on fewer samples than its features' dimensions and is biased by n; these
ask the question with statistics built for small n (torch-fidelity's KID kernel and k-NN
manifolds, Kynkaanniemi et al. 2019's realism score):

- KID (Binkowski et al. 2018): the unbiased MMD^2 between the counterfactuals' features and the
  reference's under the cubic polynomial kernel (torch-fidelity's ``kernel_poly``), with all m
  counterfactuals against all N references; ``KID_ci`` holds its jackknife standard error over
  the counterfactuals. (torch-fidelity estimates KID only between equal-size random subsets,
  which would spend all but m of the references.)
- Precision: the share of counterfactuals inside the reference's k-NN manifold (k = 3: a
  feature within some reference's distance to its 3rd neighbour), per sample; the same rule as
  torch-fidelity's ``prc`` (checked against it in the tests).
- Recall: torch-fidelity's recall, the share of references inside the counterfactuals' manifold
  (with m << N it measures coverage of the class, and is small by construction).
- Realism: the per-sample realism score, max over references of (its k-NN radius / distance to
  the counterfactual), over the references whose radius is below the median (the paper's
  pruning); above 1 is inside the manifold.

The reference is ``Task.reference``: fresh renders of the target class on the synthetic tasks, the
dataset's images of the target class from the end of the evaluation split on real tasks (a run
explains its start), ``REFERENCE_SIZE`` per class,
embedded by the task's FID features (Inception, or the synthetic SimSiam stand-in, which the
caption names) and cached per task, class and extractor (``$CFBENCH_CACHE``, default
``~/.cache/cfbench``).
"""

from __future__ import annotations

import functools
import hashlib
import os
from pathlib import Path

import numpy as np
import torch

from cfbench.api.metric import Metric, SampleContext
from cfbench.metrics.fid import extractor, folder_features

REFERENCE_SIZE = 2000  # per target class
NEIGHBOURS = 3


def cache_dir() -> Path:
    return Path(os.environ.get("CFBENCH_CACHE", Path.home() / ".cache" / "cfbench"))


def embed(images: torch.Tensor, source, device) -> np.ndarray:
    """(n, d) features of [0, 1] images by the task's FID extractor."""
    cuda = device.type == "cuda"
    batch = torch.round(images.clamp(0, 1) * 255).to(torch.uint8)
    with torch.no_grad():
        (feats,) = extractor(source.name, source.weights, cuda)(batch.cuda() if cuda else batch)
    return feats.double().cpu().numpy()


class _Reference(Metric):
    """What the realism metrics share: the reference features of each target class."""

    model = "fid_features"
    tolerance = (0.05, 0.0)

    def reference(self, label: int) -> np.ndarray:
        return _reference_features(self.task, label, self.device)

    def counterfactual_features(self, run, method, rows) -> np.ndarray:
        """The FID features of a method's written counterfactuals (cached per folder and ids)."""
        source = self.task.component("fid_features")
        return folder_features(
            source.name,
            source.weights,
            self.device.type == "cuda",
            str(run.images(method)),
            tuple(rows["sample_id"]),
        )


@functools.lru_cache(maxsize=16)
def _cached(key: str, task, label: int, device) -> np.ndarray:
    path = cache_dir() / "reference" / f"{key}.npy"
    if path.exists():
        return np.load(path)
    source = task.component("fid_features")
    chunks = [embed(b, source, device) for b in task.reference(label, REFERENCE_SIZE)]
    features = np.concatenate(chunks) if chunks else np.zeros((0, source.dims))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.npy")
    np.save(tmp, features)
    os.replace(tmp, path)
    return features


def _reference_features(task, label: int, device) -> np.ndarray:
    source = task.component("fid_features")
    weights = task.provenance(["fid_features"])["fid_features"].get("sha256") or source.weights
    key = f"{task.name}-{label}-{REFERENCE_SIZE}-{source.name}-{weights}"
    return _cached(key.replace("/", "_"), task, label, device)


def radii(reference: np.ndarray, k: int = NEIGHBOURS) -> np.ndarray:
    """Each reference's distance to its k-th nearest other reference."""
    distances = torch.cdist(torch.from_numpy(reference), torch.from_numpy(reference))
    return distances.kthvalue(k + 1, dim=1).values.numpy()


class Precision(_Reference):
    """Precision: the counterfactual lies in the reference's k-NN manifold (per sample)."""

    name = "Precision"
    higher_is_better = True
    percent, decimals = True, 1

    def per_sample(self, ctx: SampleContext):
        found = realism_and_inside(self, ctx)
        return {"Precision": found[1], "Realism": found[0]}


class Realism(_Reference):
    """The realism score of each counterfactual (above 1: inside the reference manifold)."""

    name = "Realism"
    higher_is_better = True
    decimals = 2

    def per_sample(self, ctx: SampleContext):
        score, inside = realism_and_inside(self, ctx)
        return {"Realism": score, "Precision": inside}


def realism_and_inside(metric: _Reference, ctx: SampleContext):
    """(realism score, inside the k-NN manifold) of the batch's counterfactuals against the
    reference of their target classes."""
    source = metric.task.component("fid_features")
    feats = embed(ctx.counterfactuals.images, source, metric.device)
    found = [
        realism_scores(f[None], metric.reference(label), _reference_radii(metric.reference(label)))
        for f, label in zip(feats, ctx.batch.target.tolist())
    ]
    scores = np.concatenate([f[0] for f in found])
    inside = np.concatenate([f[1] for f in found])
    return torch.from_numpy(scores), torch.from_numpy(inside.astype(np.float32))


def realism_scores(feats: np.ndarray, reference: np.ndarray, r: np.ndarray | None = None):
    """(realism score, inside the reference's k-NN manifold) per row of ``feats``; ``r``: the
    references' k-NN radii (computed when not given)."""
    r = radii(reference) if r is None else r
    d = np.linalg.norm(reference[None] - feats[:, None], axis=2)  # (m, N)
    inside = (d <= r[None]).any(1)
    kept = r <= np.median(r)
    scores = (r[kept][None] / np.maximum(d[:, kept], 1e-12)).max(1)
    return scores, inside


@functools.lru_cache(maxsize=16)
def _radii_of(shape: tuple, digest: str, reference_bytes: bytes) -> np.ndarray:
    reference = np.frombuffer(reference_bytes, dtype=np.float64).reshape(shape)
    return radii(reference)


def _reference_radii(reference: np.ndarray) -> np.ndarray:
    data = np.ascontiguousarray(reference).tobytes()
    return _radii_of(reference.shape, hashlib.sha1(data).hexdigest(), data)


def unbiased_mmd2(k_xx: np.ndarray, k_yy: np.ndarray, k_xy: np.ndarray) -> float:
    """Unbiased MMD^2 of samples X (m) and Y (n) from their kernel matrices."""
    m, n = len(k_xx), len(k_yy)
    xx = (k_xx.sum() - np.trace(k_xx)) / (m * (m - 1))
    yy = (k_yy.sum() - np.trace(k_yy)) / (n * (n - 1))
    return float(xx + yy - 2 * k_xy.mean())


class KID(_Reference):
    """KID of a method's counterfactuals against the reference (set-level), with its jackknife
    standard error over the counterfactuals."""

    name = "KID"
    higher_is_better = False
    decimals = 4
    level = "set"
    interval = "jackknife"
    tolerance = (0.01, 0.1)  # relative, as FID's: its scale is the features'

    def summarize(self, run, method, rows):
        if len(rows) < 3:
            return None, None
        from torch_fidelity.metric_kid import kernel_poly

        cf = self.counterfactual_features(run, method, rows)
        targets = rows["target"].to_numpy()
        shares = {c: (targets == c).mean() for c in np.unique(targets)}
        reference = np.concatenate(
            [self.reference(int(c))[: round(share * REFERENCE_SIZE)] for c, share in shares.items()]
        )
        poly = dict(kid_kernel_poly_degree=3, kid_kernel_poly_gamma=None, kid_kernel_poly_coef0=1)
        k_xx, k_yy = kernel_poly(cf, cf, **poly), kernel_poly(reference, reference, **poly)
        k_xy = kernel_poly(cf, reference, **poly)
        value = unbiased_mmd2(k_xx, k_yy, k_xy)
        m = len(cf)
        leave_out = []
        for i in range(m):
            keep = np.arange(m) != i
            leave_out.append(unbiased_mmd2(k_xx[keep][:, keep], k_yy, k_xy[keep]))
        leave_out = np.array(leave_out)
        se = float(np.sqrt((m - 1) / m * ((leave_out - leave_out.mean()) ** 2).sum()))
        return value, se


class Recall(_Reference):
    """torch-fidelity's recall: the share of references inside the counterfactuals' manifold."""

    name = "Recall"
    higher_is_better = True
    percent, decimals = True, 1
    level = "set"
    interval = None

    def summarize(self, run, method, rows):
        if len(rows) <= NEIGHBOURS:
            return None, None
        from torch_fidelity.metric_prc import prc_features_to_metric

        cf = self.counterfactual_features(run, method, rows)
        targets = rows["target"].to_numpy()
        reference = np.concatenate([self.reference(int(c)) for c in np.unique(targets)])
        found = prc_features_to_metric(
            torch.from_numpy(cf),
            torch.from_numpy(reference),
            prc_neighborhood=NEIGHBOURS,
            prc_batch_size=10000,
            save_cpu_ram=False,
            verbose=False,
        )
        return float(found["recall"]), None
