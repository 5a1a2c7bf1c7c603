"""SLCF: Simple Localized Counterfactuals (latent edits with latent-aggregated-gradient masks).

x is encoded to z by the task's autoencoder and a latent offset dz is learned so that the decoded
image is classified as the target, with loss  lambda_c * CE(f(x_cf), target) + lambda_s * ||dz||_1.
"Maximise the target logit" is implemented as cross-entropy toward the target, which raises the
target logit relative to the others (a raw logit can grow without the prediction changing).

Stage 1: Adam on dz for at most ``stage1_steps`` steps or until the prediction flips, summing the
gradients dL/d(dz) along the way (latent aggregated gradients, LAG). The mask is |LAG| summed
over channels, Gaussian-filtered (sigma in latent cells), normalised by its maximum and zeroed
below ``threshold`` (soft above). Stage 2 restarts from the masked stage-1 edit, optimises
z + M * dz with a small random perturbation of the masked latent at every step and stops a sample
once p(target) >= ``confidence`` for ``patience`` consecutive steps (at most ``stage2_steps``).

``residual=True`` (cfbench's default) returns x + D(z + M dz) - D(z): the decoded *change* applied
to the input, so the autoencoder's reconstruction error is not counted as part of the edit.
``residual=False`` returns D(z + M dz) as in the paper's figures. Everything is batched; finished
samples are frozen (per-sample Adam), so a sample's result does not depend on its batch.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.nn import functional as F

from cfbench import seeding
from cfbench.errors import UserError
from cfbench.method import CounterfactualMethod
from cfbench.methods.masks import postprocess_mask, upsample
from cfbench.methods.optim import PerSampleAdam
from cfbench.types import Batch, Counterfactuals


@dataclass
class LatentEditSpace:
    """Where the edit lives: latent codes rendered through the decoder (optionally as a residual)."""

    ae: torch.nn.Module
    x: torch.Tensor
    code: torch.Tensor
    recon: torch.Tensor | None

    @classmethod
    def encode(cls, ae, x: torch.Tensor, residual: bool) -> "LatentEditSpace":
        with torch.no_grad():
            z = ae.encode(x)
            recon = ae.decode(z) if residual else None
        return cls(ae, x, z, recon)

    def render(self, code: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        out = self.ae.decode(code)
        if self.recon is not None:
            out = (self.x[rows] + out - self.recon[rows]).clamp(0, 1)
        return out


@dataclass
class Trajectory:
    """Outcome of one optimisation stage, per sample."""

    delta: torch.Tensor        # final offset
    images: torch.Tensor       # the image at the step each sample stopped (or the last step)
    grad_sum: torch.Tensor     # sum of dL/d(delta) over the steps taken
    steps: torch.Tensor
    nfe: torch.Tensor
    done: torch.Tensor         # stopping rule met


class SLCF(CounterfactualMethod):
    name = "slcf"

    def __init__(self, task, device, *, lr: float = 0.01, lambda_c: float = 1.0, lambda_s: float = 0.1,
                 stage1_steps: int = 25, stage2_steps: int = 500, sigma: float = 3.0,
                 threshold: float = 0.5, noise: float = 0.01, confidence: float = 0.5,
                 patience: int = 1, residual: bool = True):
        super().__init__(task, device, lr=lr, lambda_c=lambda_c, lambda_s=lambda_s,
                         stage1_steps=stage1_steps, stage2_steps=stage2_steps, sigma=sigma,
                         threshold=threshold, noise=noise, confidence=confidence, patience=patience,
                         residual=residual)
        if stage1_steps < 1 or stage2_steps < 1:
            raise UserError("slcf: stage1_steps and stage2_steps must be at least 1 "
                            f"(got {stage1_steps} and {stage2_steps}).")
        self.classifier = task.classifier
        self.ae = task.autoencoder

    def generate(self, batch: Batch) -> Counterfactuals:
        h = self.hparams
        x, target = batch.images.to(self.device), batch.target.to(self.device)
        space = LatentEditSpace.encode(self.ae, x, h["residual"])
        ones = torch.ones_like(space.code[:, :1])
        stage1 = self.optimise(space, target, ones, torch.zeros_like(space.code), h["stage1_steps"],
                               confidence=None, patience=1, noise=0.0, generators=None)
        mask = postprocess_mask(stage1.grad_sum.abs().sum(1, keepdim=True), h["sigma"], h["threshold"])
        stage2 = self.optimise(space, target, mask, stage1.delta, h["stage2_steps"],
                               confidence=h["confidence"], patience=h["patience"], noise=h["noise"],
                               generators=batch.generators)
        info = {"steps": stage1.steps + stage2.steps, "nfe": stage1.nfe + stage2.nfe,
                "stage1_steps": stage1.steps, "converged": stage2.done}
        return Counterfactuals(stage2.images, upsample(mask, x.shape[-1]), info)

    def loss(self, logits: torch.Tensor, target: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
        """Per-sample loss: class term plus L1 sparsity of the offset (summed, so batch-independent)."""
        h = self.hparams
        return (h["lambda_c"] * F.cross_entropy(logits, target, reduction="none")
                + h["lambda_s"] * delta.abs().flatten(1).sum(1))

    def optimise(self, space: LatentEditSpace, target: torch.Tensor, mask: torch.Tensor,
                 init: torch.Tensor, max_steps: int, confidence: float | None, patience: int,
                 noise: float, generators) -> Trajectory:
        """Adam on ``delta`` with the edit ``mask * (delta + noise)``; samples stop independently.

        Stopping rule: with ``confidence`` None, the prediction is the target (stage 1); otherwise
        p(target) >= confidence for ``patience`` consecutive steps. The returned image is the one
        evaluated at the stopping step, so a stopped sample's flip was verified on its output.
        """
        b = init.shape[0]
        delta = init.clone()
        opt = PerSampleAdam(delta, self.hparams["lr"])
        grad_sum = torch.zeros_like(delta)
        with torch.no_grad():
            images = space.render(space.code + mask * delta, torch.arange(b, device=delta.device))
        steps = torch.zeros(b, dtype=torch.long, device=delta.device)
        streak = torch.zeros_like(steps)
        done = torch.zeros(b, dtype=torch.bool, device=delta.device)
        for _ in range(max_steps):
            rows = (~done).nonzero().squeeze(1)
            if len(rows) == 0:
                break
            d = delta[rows].clone().requires_grad_(True)
            edit = d if noise == 0 else d + noise * seeding.randn(
                [generators[i] for i in rows.tolist()], tuple(d.shape[1:]), d.device)
            x_cf = space.render(space.code[rows] + mask[rows] * edit, rows)
            logits = self.classifier(x_cf)
            loss = self.loss(logits, target[rows], d)
            (grad,) = torch.autograd.grad(loss.sum(), d)
            steps[rows] += 1
            grad_sum[rows] += grad
            with torch.no_grad():
                if confidence is None:
                    ok = logits.argmax(1) == target[rows]
                else:
                    ok = logits.softmax(1).gather(1, target[rows, None]).squeeze(1) >= confidence
                streak[rows] = torch.where(ok, streak[rows] + 1, torch.zeros_like(streak[rows]))
                stop = streak[rows] >= patience
                images[rows] = x_cf.detach()
                done[rows] = stop
                move = rows[~stop]
                if len(move):
                    opt.step(delta, grad[~stop], move)
        return Trajectory(delta, images, grad_sum, steps, steps.clone(), done)
