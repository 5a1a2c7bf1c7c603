"""Mask post-processing shared by every attribution-masked method (LAG, LAG*, LIG, IG, ...).

One code path, so an ablation over the attribution isolates the attribution: Gaussian filter
(sigma in cells of the map's grid, scipy's 'reflect' boundary), normalise by the per-sample
maximum, zero below the threshold and keep the soft values above it.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F


def _reflect(i: int, n: int) -> int:
    """scipy.ndimage 'reflect' (half-sample symmetric) index into [0, n)."""
    period = 2 * n
    i %= period
    return i if i < n else period - 1 - i


def blur_matrix(n: int, sigma: float, truncate: float = 4.0) -> torch.Tensor:
    """(n, n) matrix W with W @ v the 1-D Gaussian filter of v (as
    scipy.ndimage.gaussian_filter1d)."""
    if sigma <= 0:
        return torch.eye(n)
    radius = int(truncate * sigma + 0.5)
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float64)
    kernel = torch.exp(-0.5 * (offsets / sigma) ** 2)
    kernel /= kernel.sum()
    w = torch.zeros(n, n, dtype=torch.float64)
    for i in range(n):
        for k, weight in zip(range(-radius, radius + 1), kernel):
            w[i, _reflect(i + k, n)] += weight
    return w.float()


def gaussian_blur(maps: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian filter of (B,1,h,w) maps."""
    h, w = maps.shape[-2:]
    wh = blur_matrix(h, sigma).to(maps)
    ww = blur_matrix(w, sigma).to(maps)
    return wh @ maps @ ww.T


def postprocess_mask(attribution: torch.Tensor, sigma: float, threshold: float) -> torch.Tensor:
    """Soft mask in [0, 1] from a non-negative (B,1,h,w) attribution map."""
    smooth = gaussian_blur(attribution, sigma)
    peak = smooth.flatten(1).amax(1).clamp_min(1e-12).view(-1, 1, 1, 1)
    norm = smooth / peak
    return torch.where(norm >= threshold, norm, torch.zeros_like(norm))


def upsample(mask: torch.Tensor, size: int) -> torch.Tensor:
    """A latent-grid mask at image resolution (bilinear), for writing and overlays."""
    if mask.shape[-1] == size:
        return mask
    return F.interpolate(mask, size=(size, size), mode="bilinear", align_corners=False).clamp(0, 1)
