"""Realism at small n: KID, precision, recall and the realism score against independent
computations, and on a synthetic task real renders against an adversarial edit."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cfbench.metrics.realism import radii, realism_scores, unbiased_mmd2


def _kernel(a, b):
    return (a @ b.T / a.shape[1] + 1) ** 3


def test_kid_is_the_unbiased_mmd_with_every_pair():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(7, 4)), rng.normal(0.5, 1, size=(11, 4))
    xx = sum(
        _kernel(x[i : i + 1], x[j : j + 1])[0, 0] for i in range(7) for j in range(7) if i != j
    )
    yy = sum(
        _kernel(y[i : i + 1], y[j : j + 1])[0, 0] for i in range(11) for j in range(11) if i != j
    )
    xy = sum(_kernel(x[i : i + 1], y[j : j + 1])[0, 0] for i in range(7) for j in range(11))
    expected = xx / 42 + yy / 110 - 2 * xy / 77
    got = unbiased_mmd2(_kernel(x, x), _kernel(y, y), _kernel(x, y))
    assert got == pytest.approx(expected, rel=1e-12)
    from torch_fidelity.metric_kid import kernel_poly

    poly = dict(kid_kernel_poly_degree=3, kid_kernel_poly_gamma=None, kid_kernel_poly_coef0=1)
    np.testing.assert_allclose(kernel_poly(x, y, **poly), _kernel(x, y))


def test_precision_follows_torch_fidelity_and_the_realism_score_its_definition():
    from torch_fidelity.metric_prc import prc_features_to_metric

    rng = np.random.default_rng(1)
    reference = rng.normal(size=(60, 5))
    cf = np.concatenate([rng.normal(size=(10, 5)), rng.normal(4, 1, size=(10, 5))])
    scores, inside = realism_scores(cf, reference)
    theirs = prc_features_to_metric(
        torch.from_numpy(cf),
        torch.from_numpy(reference),
        prc_neighborhood=3,
        prc_batch_size=1000,
        save_cpu_ram=False,
        verbose=False,
    )
    assert inside.mean() == pytest.approx(theirs["precision"])
    r = radii(reference)
    kept = r <= np.median(r)
    for f, score in zip(cf, scores):  # Kynkaanniemi et al.: max over the pruned references
        d = np.linalg.norm(reference[kept] - f, axis=1)
        assert score == pytest.approx(max(r[kept] / d))
    assert inside[:10].mean() > inside[10:].mean() and scores[:10].mean() > scores[10:].mean()
