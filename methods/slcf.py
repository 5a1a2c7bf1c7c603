"""SLCF: Simple Localized Counterfactuals (latent edits with latent-aggregated-gradient masks).

x is encoded to z by the task's autoencoder and a latent offset dz is learned so that the decoded
image is classified as the target, with loss  lambda_c * CE(f(x_cf), target) + lambda_s * ||dz||_1.
The L1 norm is averaged over latent elements (per sample), so lambda_s = 0.1 means the same for any
latent size; summed over the thousands of elements of a 16-channel latent it would outweigh the class term
and no edit would ever flip (measured: p(target) stays 0.00 for 60 steps).
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

The paper's ablations are presets of this one class (registry lines in ``methods/__init__.py``),
so every variant runs the same two-stage loop and the same mask post-processing:
``mask`` picks the attribution the stage-2 mask is made from (``lag``; ``lig`` latent integrated
gradients; ``ig`` pixel Integrated Gradients; ``none``: edit everywhere, see ``attribution.py``),
``space`` the edit space (``latent``, or ``pixel``: no autoencoder), and ``lambda_t`` > 0 adds the
sparse-autoencoder trait loss lambda_t * ||h_enc(x_cf) - h_enc(x)||_1 on the classifier's
penultimate features ("Ours + SAE"). The loop itself takes a *goal* (loss and stopping rule), so
trait isolation (``cfbench.traits``) reuses it with a one-feature goal instead of the class.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch.nn import functional as F

from cfbench import seeding
from cfbench.errors import UserError
from cfbench.method import CounterfactualMethod
from cfbench.methods.attribution import latent_integrated_gradients, pixel_integrated_gradients, to_grid
from cfbench.methods.masks import postprocess_mask, upsample
from cfbench.methods.optim import PerSampleAdam
from cfbench.types import Batch, Counterfactuals

MASKS = ("lag", "lig", "ig", "none")
SPACES = ("latent", "pixel")

# (x_cf of the active rows, those rows) -> (per-sample loss without the sparsity term, goal reached)
Goal = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def trait_l1(codes: torch.Tensor, reference: torch.Tensor, dead_zone: float = 1e-4) -> torch.Tensor:
    """||codes - reference||_1 per sample, ignoring differences below ``dead_zone``. At the start of
    an edit the codes equal the reference up to float noise whose sign, and so the gradient of
    |.|, would otherwise depend on the batch the sample runs in."""
    return ((codes - reference).abs() - dead_zone).clamp_min(0).sum(1)


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
class PixelEditSpace:
    """Editing the pixels directly (the 'Pixel' rows of the paper's Table 3): the code is x."""

    code: torch.Tensor

    def render(self, code: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        return code.clamp(0, 1)


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
                 patience: int = 1, residual: bool = True, mask: str = "lag", space: str = "latent",
                 lambda_t: float = 0.0, ig_steps: int = 50, pixel_cell: int = 4):
        super().__init__(task, device, lr=lr, lambda_c=lambda_c, lambda_s=lambda_s,
                         stage1_steps=stage1_steps, stage2_steps=stage2_steps, sigma=sigma,
                         threshold=threshold, noise=noise, confidence=confidence, patience=patience,
                         residual=residual, mask=mask, space=space, lambda_t=lambda_t, ig_steps=ig_steps,
                         pixel_cell=pixel_cell)
        if stage1_steps < 1 or stage2_steps < 1:
            raise UserError("slcf: stage1_steps and stage2_steps must be at least 1 "
                            f"(got {stage1_steps} and {stage2_steps}).")
        if mask not in MASKS or space not in SPACES:
            raise UserError(f"slcf: mask must be one of {', '.join(MASKS)} and space one of "
                            f"{', '.join(SPACES)} (got mask={mask!r}, space={space!r}).")
        if lambda_t < 0 or ig_steps < 1 or pixel_cell < 1:
            raise UserError(f"slcf: lambda_t must be >= 0, ig_steps and pixel_cell >= 1 "
                            f"(got {lambda_t}, {ig_steps}, {pixel_cell}).")
        self.classifier = task.classifier
        self.ae = task.autoencoder if space == "latent" else None
        self.sae = None
        if lambda_t > 0:
            from cfbench.tasks.sae import split_classifier

            self.sae = task.sae
            self.features, self.head = split_classifier(self.classifier)

    def generate(self, batch: Batch) -> Counterfactuals:
        h = self.hparams
        x, target = batch.images.to(self.device), batch.target.to(self.device)
        space = self.edit_space(x)
        reference = None
        if self.sae is not None:
            with torch.no_grad():
                reference = self.sae.encode(self.features(x))
        extra_nfe = h["ig_steps"] if h["mask"] in ("lig", "ig") else 0
        stage1, mask, stage2 = self.two_stage(
            space, self.class_goal(target, None, reference), self.class_goal(target, h["confidence"], reference),
            batch.generators, lambda s1: self.attribution(space, batch, s1))
        info = {"steps": stage1.steps + stage2.steps, "nfe": stage1.nfe + stage2.nfe + extra_nfe,
                "stage1_steps": stage1.steps, "converged": stage2.done}
        return Counterfactuals(stage2.images, None if mask is None else upsample(mask, x.shape[-1]), info)

    def edit_space(self, x: torch.Tensor):
        if self.hparams["space"] == "pixel":
            return PixelEditSpace(x)
        return LatentEditSpace.encode(self.ae, x, self.hparams["residual"])

    def class_goal(self, target: torch.Tensor, confidence: float | None, reference: torch.Tensor | None) -> Goal:
        """Class loss lambda_c * CE toward the target (plus the trait loss when ``reference`` codes
        are given). Reached: the prediction is the target (``confidence`` None, stage 1), else
        p(target) >= confidence."""
        h = self.hparams

        def goal(x_cf, rows):
            feats = None if reference is None else self.features(x_cf)
            logits = self.classifier(x_cf) if feats is None else self.head(feats)
            loss = h["lambda_c"] * F.cross_entropy(logits, target[rows], reduction="none")
            if feats is not None:
                loss = loss + h["lambda_t"] * trait_l1(self.sae.encode(feats), reference[rows])
            if confidence is None:
                reached = logits.argmax(1) == target[rows]
            else:
                reached = logits.softmax(1).gather(1, target[rows, None]).squeeze(1) >= confidence
            return loss, reached

        return goal

    def mask_grid(self, space) -> tuple[int, int]:
        """Grid the mask is made on: the latent grid, or for pixel edits cells of ``pixel_cell``
        pixels (the autoencoder's downsampling factor), so that sigma, and hence the mask's
        extent in the image, mean the same in both edit spaces."""
        h, w = space.code.shape[-2:]
        if self.hparams["space"] == "pixel":
            return h // self.hparams["pixel_cell"], w // self.hparams["pixel_cell"]
        return h, w

    def attribution(self, space, batch: Batch, stage1: Trajectory) -> torch.Tensor | None:
        """Non-negative (B,1,h,w) map on ``mask_grid`` that the stage-2 mask is made from."""
        kind, steps = self.hparams["mask"], self.hparams["ig_steps"]
        grid = self.mask_grid(space)
        if kind == "none":
            return None
        if kind == "lag":
            return to_grid(stage1.grad_sum.abs().sum(1, keepdim=True), grid)
        if kind == "lig":
            target = batch.target.to(self.device)
            rows = torch.arange(len(target), device=self.device)

            def score(code):
                return self.classifier(space.render(code, rows)).gather(1, target[:, None]).squeeze(1)

            lig = latent_integrated_gradients(score, space.code, stage1.delta, steps)
            return to_grid(lig.abs().sum(1, keepdim=True), grid)
        ig = pixel_integrated_gradients(self.classifier, batch.images.to(self.device),
                                        batch.source.to(self.device), steps)
        return to_grid(ig.abs().sum(1, keepdim=True), grid)

    def two_stage(self, space, first: Goal, second: Goal, generators,
                  attribute: Callable[[Trajectory], torch.Tensor | None]):
        """Stage 1 on the whole code until ``first`` is reached; mask from ``attribute(stage1)``
        (None: no mask), brought to the code's grid; stage 2 from the masked stage-1 offset until
        ``second`` is reached. Returns (stage 1, mask on the attribution's grid or None, stage 2)."""
        h = self.hparams
        ones = torch.ones_like(space.code[:, :1])
        stage1 = self.optimise(space, first, ones, torch.zeros_like(space.code), h["stage1_steps"],
                               patience=1, noise=0.0, generators=None)
        attribution = attribute(stage1)
        mask = None if attribution is None else postprocess_mask(attribution, h["sigma"], h["threshold"])
        edit_mask = ones if mask is None else upsample(mask, space.code.shape[-1])
        stage2 = self.optimise(space, second, edit_mask, stage1.delta, h["stage2_steps"],
                               patience=h["patience"], noise=h["noise"], generators=generators)
        return stage1, mask, stage2

    def optimise(self, space, goal: Goal, mask: torch.Tensor, init: torch.Tensor, max_steps: int,
                 patience: int, noise: float, generators) -> Trajectory:
        """Adam on ``delta`` with the edit ``mask * (delta + noise)``; samples stop independently,
        once ``goal`` is reached for ``patience`` consecutive steps. The loss adds the L1 sparsity
        of the offset (a per-sample mean, so batch-independent). The returned image is the one
        evaluated at the stopping step, so a stopped sample's goal was verified on its output.
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
            goal_loss, reached = goal(x_cf, rows)
            loss = goal_loss + self.hparams["lambda_s"] * d.abs().flatten(1).mean(1)
            (grad,) = torch.autograd.grad(loss.sum(), d)
            steps[rows] += 1
            grad_sum[rows] += grad
            with torch.no_grad():
                streak[rows] = torch.where(reached, streak[rows] + 1, torch.zeros_like(streak[rows]))
                stop = streak[rows] >= patience
                images[rows] = x_cf.detach()
                done[rows] = stop
                move = rows[~stop]
                if len(move):
                    opt.step(delta, grad[~stop], move)
        return Trajectory(delta, images, grad_sum, steps, steps.clone(), done)
