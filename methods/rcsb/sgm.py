"""RCSB's SGM ablation: classifier-guided DDPM inpainting of the region with a pixel-space
diffusion prior (the task's ``diffusion_prior``), the paper's own comparison against score-based
inpainters, offered as the presets ``rcsb_sgm_a|b|c`` (not the method, which runs on I2SB's
bridge, ``bridge.py``).

Sampling is deterministic DDIM (eta = 0) on a DDIMScheduler grid of ``steps`` steps, started at
tau * T from the original noised to that level (``truncation``); known content outside R is
re-imposed at every step, noised to the step's level with the sample's fixed noise. The guidance
recipe, each step switchable:

- ``tweedie``: the classifier gradient is taken at the denoised estimate x0_hat composited into
  x, not at the noisy state; either way the step edits x0_hat inside R only.
- ``adaptive_norm``: every gradient is divided by the first gradient's per-element RMS over R.
- ``adam``: the gradient sequence is stabilised by Adam moments; the step is the Adam direction.
- ``s``: guidance scale; x0_hat <- x0_hat - s * lr * direction. The paper gives no pixel step size
  for this prior; ``lr`` = 0.04 was chosen on the synthetic tasks (n = 16, seed 0): at 0.01 adding
  a pattern (plain -> spotted/striped) rarely flips, at 0.04 all three presets flip >= 0.75.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from cfbench.methods.toolkit.optim import PerSampleAdam


def timesteps(prior, h) -> list[int]:
    """The DDIM grid of ``steps`` steps over the whole schedule, cut at tau * T if
    truncating."""
    from diffusers import DDIMScheduler

    grid = DDIMScheduler.from_config(prior.scheduler.config)
    grid.set_timesteps(h.steps)
    ts = [int(t) for t in grid.timesteps]
    if h.truncation:
        ts = [t for t in ts if t < h.tau * prior.num_train_timesteps] or ts[-1:]
    return ts


def inpaint(method, x, target, region, noise) -> tuple[torch.Tensor, torch.Tensor]:
    """Guided DDIM inpainting of ``region``; returns the final x0 estimate and the number of
    classifier evaluations per sample."""
    h, p = method.hparams, method.prior
    b = len(x)

    def level(t: int) -> torch.Tensor:
        return torch.full((b,), t, dtype=torch.long, device=x.device)

    def known(t: int) -> torch.Tensor:
        """The original content noised to step ``t`` with the sample's fixed noise."""
        return p.noised(x, noise, level(t))

    x_t = known(method.timesteps[0])
    if not h.truncation:
        x_t = region * noise + (1 - region) * x_t
    guidance = _Guidance(h, region, x)
    evals = torch.zeros(b, dtype=torch.long, device=x.device)
    for i, t in enumerate(method.timesteps):
        method.progress(f"denoising step {i + 1}/{len(method.timesteps)}")
        with torch.no_grad():
            eps, x0 = p.denoise(x_t, t)
        if h.s > 0:
            at = x0 if h.tweedie else ((x_t + 1) / 2).clamp(0, 1)  # noisy state as an image
            x0 = (
                x0
                - h.s
                * h.lr
                * guidance.direction(class_gradient(method.classifier, at, x, region, target))
            ).clamp(0, 1)
            evals += 1
        prev = method.timesteps[i + 1] if i + 1 < len(method.timesteps) else None
        if prev is None:  # the last step lands on x0 itself
            break
        # DDIM (eta = 0) from the *guided* x0 and the model's eps; diffusers' step would
        # re-derive
        # both from eps, undoing the guidance, so this one line is written out.
        a_prev = p.alphas_cumprod[prev]
        x_t = region * (a_prev.sqrt() * (x0 * 2 - 1) + (1 - a_prev).sqrt() * eps) + (
            1 - region
        ) * known(prev)
    return x0, evals


def class_gradient(classifier, estimate, x, region, target) -> torch.Tensor:
    """d CE(f(R * estimate + (1 - R) * x), target) / d estimate, per sample."""
    with torch.enable_grad():
        e = estimate.detach().requires_grad_(True)
        loss = F.cross_entropy(classifier(region * e + (1 - region) * x), target, reduction="sum")
        (grad,) = torch.autograd.grad(loss, e)
    return grad


class _Guidance:
    """Turns the raw classifier gradients of one trajectory into update directions (inside R):
    optional adaptive normalisation by the first gradient's RMS over R, optional Adam moments."""

    def __init__(self, hparams, region: torch.Tensor, like: torch.Tensor):
        self.h, self.region = hparams, region
        self.first_rms: torch.Tensor | None = None
        self.adam = PerSampleAdam(torch.zeros_like(like), lr=1.0)
        self.rows = torch.arange(len(region), device=region.device)

    def direction(self, grad: torch.Tensor) -> torch.Tensor:
        grad = grad * self.region
        if self.h.adaptive_norm:
            if self.first_rms is None:
                size = (3 * self.region.flatten(1).sum(1)).clamp_min(1)
                self.first_rms = (
                    (grad.flatten(1).norm(dim=1) / size.sqrt()).clamp_min(1e-12).view(-1, 1, 1, 1)
                )
            grad = grad / self.first_rms
        if not self.h.adam:
            return grad
        step = torch.zeros_like(grad)  # Adam's update of a zero parameter: -direction
        self.adam.step(step, grad, self.rows)
        return -step
