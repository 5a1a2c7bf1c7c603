"""Attributions that SLCF's mask ablation compares against LAG (the paper's Table 3).

- Latent integrated gradients (LIG, Eq. 4 of the SLCF paper): attribute the class score to the
  latent along the straight path z -> z + dz found by stage 1,
  LIG = dz * integral_0^1 grad_z f_t(D(z + alpha dz)) d alpha, here with the midpoint rule.
- Pixel Integrated Gradients (captum) of the source class from a black baseline, which the
  latent variants reduce to the latent grid by average pooling.

Both return raw attributions; the masks are made by the shared ``masks.postprocess_mask``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.nn import functional as F


def latent_integrated_gradients(
    score: Callable[[torch.Tensor], torch.Tensor],
    code: torch.Tensor,
    delta: torch.Tensor,
    steps: int = 50,
) -> torch.Tensor:
    """``delta`` times the mean gradient of ``score`` (per-sample scalar, (B,)) at the midpoints
    code + (k + 1/2)/steps * delta, k < steps. Same shape as ``code``."""
    total = torch.zeros_like(delta)
    for k in range(steps):
        point = (code + (k + 0.5) / steps * delta).detach().requires_grad_(True)
        with torch.enable_grad():
            (grad,) = torch.autograd.grad(score(point).sum(), point)
        total += grad
    return delta * total / steps


def pixel_integrated_gradients(
    classifier: torch.nn.Module,
    x: torch.Tensor,
    source: torch.Tensor,
    steps: int = 50,
    chunk: int = 256,
) -> torch.Tensor:
    """captum Integrated Gradients of the source-class logit w.r.t. the pixels, (B,3,H,W)."""
    from captum.attr import IntegratedGradients

    with torch.enable_grad():
        return IntegratedGradients(classifier).attribute(
            x,
            baselines=torch.zeros_like(x),
            target=source,
            n_steps=steps,
            internal_batch_size=chunk,
        )


def to_grid(attribution: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """A (B,1,H,W) map averaged onto a coarser (h, w) grid (identity when it already matches)."""
    if tuple(attribution.shape[-2:]) == tuple(grid):
        return attribution
    return F.adaptive_avg_pool2d(attribution, tuple(grid))
