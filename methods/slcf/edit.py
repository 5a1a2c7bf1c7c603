"""The pieces of an SLCF edit: where it lives (latent codes rendered through the decoder, or
pixels), the goal it optimises toward, the per-sample Adam loop of one stage, and what the two
stages leave behind."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch.nn import functional as F

from cfbench import seeding
from cfbench.methods.toolkit.optim import PerSampleAdam

# (x_cf of the active rows, those rows) -> (per-sample loss without the sparsity term, goal reached)
Goal = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


@dataclass
class AfterMask:
    """A stage-2 goal that can only be made once the stage-2 mask (B,1,h,w or None) is known."""

    make: Callable[[torch.Tensor | None], Goal]


@dataclass
class LatentEditSpace:
    """Where the edit lives: latent codes rendered through the decoder (optionally as a
    residual)."""

    ae: torch.nn.Module
    x: torch.Tensor
    code: torch.Tensor
    recon: torch.Tensor | None
    size: int = 0  # the autoencoder's input side (0: the image's own)

    @classmethod
    def encode(cls, ae, x: torch.Tensor, residual: bool, size: int = 0) -> LatentEditSpace:
        """``size``: the released code's resolution for the autoencoder: the image is resized
        to it bilinearly and every render resized back bicubically."""
        space = cls(ae, x, None, None, size if size and size != x.shape[-1] else 0)
        with torch.no_grad():
            z = ae.encode(space.into(x))
            space.code = z
            space.recon = space.back(ae.decode(z)) if residual else None
        return space

    def into(self, x: torch.Tensor) -> torch.Tensor:
        if not self.size:
            return x
        return F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)

    def back(self, out: torch.Tensor) -> torch.Tensor:
        if not self.size:
            return out
        side = self.x.shape[-1]
        out = F.interpolate(out, size=(side, side), mode="bicubic", align_corners=False)
        return out.clamp(0, 1)

    def render(self, code: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        out = self.back(self.ae.decode(code))
        if self.recon is not None:
            out = (self.x[rows] + out - self.recon[rows]).clamp(0, 1)
        return out


@dataclass
class PixelEditSpace:
    """Editing the pixels directly (the 'Pixel' rows of the paper's Table 3): the code is x."""

    code: torch.Tensor

    def render(self, code: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        return code.clamp(0, 1)


@dataclass
class Trajectory:
    """Outcome of one optimisation stage, per sample."""

    delta: torch.Tensor  # final offset
    images: torch.Tensor  # the image at the step each sample stopped (or the last step)
    grad_sum: torch.Tensor  # sum of dL/d(delta) over the steps taken
    steps: torch.Tensor
    nfe: torch.Tensor
    done: torch.Tensor  # stopping rule met


@dataclass
class Edit:
    """The two stages of an SLCF edit and the mask between them (on the attribution's grid)."""

    stage1: Trajectory
    mask: torch.Tensor | None
    stage2: Trajectory
    space: LatentEditSpace | PixelEditSpace


def optimise_offsets(
    space,
    goal: Goal,
    mask: torch.Tensor,
    init: torch.Tensor,
    max_steps: int,
    patience: int,
    noise: float,
    generators,
    lr: float,
    lambda_s: float,
    count_stopping_step: bool,
    progress: Callable[[str], None],
) -> Trajectory:
    """Adam on ``delta`` with the edit ``mask * (delta + noise)``; samples stop independently,
    once ``goal`` is reached for ``patience`` consecutive steps. The loss adds the L1 sparsity
    of the offset (a per-sample mean, so batch-independent). The returned image is the one
    evaluated at the stopping step, so a stopped sample's goal was verified on its output.
    ``count_stopping_step``: LAG sums the gradient of the step at which a sample stops too (the
    paper's sum) or not (the released code breaks before its backward)."""
    b = init.shape[0]
    delta = init.clone()
    opt = PerSampleAdam(delta, lr)
    grad_sum = torch.zeros_like(delta)
    with torch.no_grad():
        images = space.render(space.code + mask * delta, torch.arange(b, device=delta.device))
    steps = torch.zeros(b, dtype=torch.long, device=delta.device)
    streak = torch.zeros_like(steps)
    done = torch.zeros(b, dtype=torch.bool, device=delta.device)
    for step in range(max_steps):
        rows = (~done).nonzero().squeeze(1)
        if len(rows) == 0:
            break
        progress(f"step {step + 1}/{max_steps}, {len(rows)}/{b} active")
        d = delta[rows].clone().requires_grad_(True)
        edit = (
            d
            if noise == 0
            else d
            + noise
            * seeding.randn([generators[i] for i in rows.tolist()], tuple(d.shape[1:]), d.device)
        )
        x_cf = space.render(space.code[rows] + mask[rows] * edit, rows)
        goal_loss, reached = goal(x_cf, rows)
        loss = goal_loss + lambda_s * d.abs().flatten(1).mean(1)
        (grad,) = torch.autograd.grad(loss.sum(), d)
        steps[rows] += 1
        with torch.no_grad():
            streak[rows] = torch.where(reached, streak[rows] + 1, torch.zeros_like(streak[rows]))
            stop = streak[rows] >= patience
            counted = torch.ones_like(stop) if count_stopping_step else ~stop
            grad_sum[rows[counted]] += grad[counted]
            images[rows] = x_cf.detach()
            done[rows] = stop
            move = rows[~stop]
            if len(move):
                opt.step(delta, grad[~stop], move)
    return Trajectory(delta, images, grad_sum, steps, steps.clone(), done)
