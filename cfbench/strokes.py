"""Free-form brush-stroke masks, the inpainting protocol's region (RCSB's Table 2B; the masks I2SB's
inpainters are trained on): shared by RCSB's regions and the synthetic bridges' training, drawn
from per-sample generators so every method sees the same mask for a sample."""

from __future__ import annotations

import math

import torch

from cfbench.errors import UserError


def freeform(generators: list[torch.Generator], size: int, lo: float, hi: float) -> torch.Tensor:
    """Random brush-stroke masks (B,1,size,size) whose area share lies in [lo, hi].

    Each sample draws a goal area and paints wandering strokes of round stamps until the goal is
    reached; the goal is drawn so that the last stamp cannot overshoot ``hi``.
    """
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    radius = max(1.0, min(size / 16, math.sqrt(max(hi - lo, 0.0) / 2) * size / 2))
    stamp_px = int(((yy - size // 2) ** 2 + (xx - size // 2) ** 2 <= radius**2).sum())
    first, last = lo * size * size, hi * size * size - stamp_px
    if not 0 < lo <= hi < 1 or last < first:
        raise UserError(
            f"Free-form region area range [{lo}, {hi}] is invalid or too narrow for "
            f"{size} x {size} images: use 0 < lo < hi < 1 with hi - lo >= "
            f"{2 * stamp_px / size**2:.3f}."
        )
    masks = []
    for g in generators:

        def u(a: float, b: float, g=g) -> float:
            return float(torch.empty(1).uniform_(a, b, generator=g))

        goal = u(first, last)
        mask = torch.zeros(size, size, dtype=torch.bool)
        while mask.sum() < goal:
            y, x, angle = u(0, size - 1), u(0, size - 1), u(0, 2 * math.pi)
            for _ in range(int(u(4, 12))):
                mask |= (yy - y) ** 2 + (xx - x) ** 2 <= radius**2
                if mask.sum() >= goal:
                    break
                angle += u(-0.6, 0.6)
                y = min(max(y + radius * math.sin(angle), 0.0), size - 1.0)
                x = min(max(x + radius * math.cos(angle), 0.0), size - 1.0)
        masks.append(mask)
    return torch.stack(masks).unsqueeze(1).float()
