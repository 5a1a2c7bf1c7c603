"""COUT against a deliberately simple per-sample, per-step loop (numpy ordering, one image per
call)."""

import numpy as np
import torch

from cfbench.metrics.cout import insertion_counts, transition


def simple_cout(classifier, x, x_cf, source, target, order_map=None):
    """One sample: insert pixels one chunk at a time, one classifier call per step, numpy
    trapezoid."""
    _, h, w = x.shape
    if order_map is None:
        # 8-bit sums
        score = np.abs(np.round(x_cf.numpy() * 255) - np.round(x.numpy() * 255)).sum(0).ravel()
    else:
        score = (
            torch.nn.functional.interpolate(
                order_map[None], size=(h, w), mode="bilinear", align_corners=False
            )[0, 0]
            .numpy()
            .ravel()
        )
    order = np.argsort(-score, kind="stable")
    step = max(1, h * w // 50)
    fractions, p_src, p_tgt = [], [], []
    n = 0
    while True:
        keep = np.zeros(h * w, dtype=bool)
        keep[order[:n]] = True
        m = torch.from_numpy(keep.reshape(1, h, w)).float()
        image = x * (1 - m) + x_cf * m
        with torch.no_grad():
            p = classifier(image[None]).softmax(1)[0]
        fractions.append(n / (h * w))
        p_src.append(float(p[source]))
        p_tgt.append(float(p[target]))
        if n == h * w:
            break
        n = min(n + step, h * w)
    return np.trapezoid(p_tgt, fractions) - np.trapezoid(p_src, fractions)


def pair(task, n=5, seed=0):
    samples = task.load([f"{i:05d}" for i in range(n)])
    g = torch.Generator().manual_seed(seed)
    x = samples.images
    # A structured edit (a noisy blob) so the ordering and the curve are non-trivial.
    yy, xx = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij")
    blob = torch.exp(-((yy - 30) ** 2 + (xx - 34) ** 2) / 150.0)
    x_cf = (x + blob * (torch.rand(x.shape, generator=g) - 0.3)).clamp(0, 1)
    return x, x_cf, samples.labels, task.target_of(samples.labels)


def test_insertion_counts_cover_all_pixels():
    counts, _ = insertion_counts(64 * 64)
    assert counts[0] == 0 and counts[-1] == 4096 and (counts.diff() == 81).sum() == len(counts) - 2
    assert insertion_counts(7)[0].tolist() == list(range(8))


def test_cout_matches_simple_loop(task):
    x, x_cf, src, tgt = pair(task)
    batched = transition(task.classifier, x, x_cf, src, tgt, max_images=37).cout
    for i in range(len(x)):
        ref = simple_cout(task.classifier, x[i], x_cf[i], int(src[i]), int(tgt[i]))
        assert abs(float(batched[i]) - ref) < 1e-6


def test_cout_with_small_order_map_matches_simple_loop(task):
    x, x_cf, src, tgt = pair(task, n=3, seed=1)
    coarse = torch.rand(3, 1, 16, 16, generator=torch.Generator().manual_seed(2))
    batched = transition(task.classifier, x, x_cf, src, tgt, order_map=coarse).cout
    for i in range(3):
        ref = simple_cout(task.classifier, x[i], x_cf[i], int(src[i]), int(tgt[i]), coarse[i])
        assert abs(float(batched[i]) - ref) < 1e-6


def test_cout_sign_and_range(task):
    x, _, src, tgt = pair(task, n=4)
    same = transition(task.classifier, x, x, src, tgt)
    p = task.classifier(x).softmax(1)
    expected = p[torch.arange(4), tgt] - p[torch.arange(4), src]
    assert torch.allclose(same.cout, expected, atol=1e-6)  # nothing changes: flat curves
    assert (same.cout < -0.5).all()  # the classifier is confident in the source
