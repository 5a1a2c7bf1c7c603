"""RCSB's guided sampling on I2SB's inpainting bridge (the paper's Algorithm 3 as its released code
runs it: ``src_cddb/i2sb/diffusion.py``'s ``ddpm_dps_sampling`` with the ``stable_adaptive``
guidance).

With R the region (1 = edit) and x in the model's [-1, 1] scale: x1 = x outside R and Gaussian noise
inside; the trajectory starts at step tau * T - 1 of the bridge between x and x1 (optimal-transport
ODE, no noise) and walks I2SB's ``space_indices(tau * T, nfe + 1)`` down to step 0. At each step:

1. x0_hat = x_t - std_fwd[t] * network(x_t, t), keeping the graph;
2. J = sum over the batch of log softmax(f(x0_hat))[target], f the classifier on x0_hat mapped to
   [0, 1] (``classifier_input``: (x + 1) / 2 clamped, or per-image min-max as the released code);
3. g = dJ / dx_t through the network; Adam-stabilised (betas 0.9 / 0.999, eps 1e-8, reset per
   trajectory) and divided per sample by the first stabilised gradient's L2 norm (adaptive
   normalisation);
4. x_t <- x_t + s * g (not scaled by the bridge's coefficients), then I2SB's posterior from it with
   the unguided x0_hat, and x1's content re-imposed outside R.

The counterfactual is the final state, clamped, composited with the input outside R. The
classifier sees the whole x0_hat (not composited), as the released code feeds it.
"""

from __future__ import annotations

import torch

from cfbench.methods.toolkit.optim import PerSampleAdam


def classifier_view(x0: torch.Tensor, rule: str) -> torch.Tensor:
    """x0_hat (model scale) as the classifier's [0, 1] input."""
    if rule == "clamp":
        return ((x0 + 1) / 2).clamp(0, 1)
    low = x0.flatten(1).amin(1).view(-1, 1, 1, 1)
    shifted = x0 - low
    return shifted / shifted.flatten(1).amax(1).clamp_min(1e-12).view(-1, 1, 1, 1)


def guided_inpaint(method, x, target, region, noise, fresh) -> tuple[torch.Tensor, torch.Tensor]:
    """(counterfactual in [0, 1] before compositing, classifier evaluations per sample); ``noise``
    fills the region of x1, ``fresh()`` draws the bridge's own noise (only without OT-ODE)."""
    h, bridge = method.hparams, method.bridge
    start = max(1, round(h.tau * len(bridge.std_fwd)))
    x_gt = x * 2 - 1
    x1 = x_gt * (1 - region) + region * noise
    x_start = bridge.q_sample(start - 1, x_gt, x1, None if bridge.config.ot_ode else fresh())
    steps = bridge.step_indices(start, h.nfe + 1)
    adam = PerSampleAdam(torch.zeros_like(x), lr=1.0, betas=(0.9, 0.999), eps=1e-8)
    rows = torch.arange(len(x), device=x.device)
    first_norm = None
    done = 0

    def guide(x_t, step):
        nonlocal first_norm, done
        done += 1
        method.progress(f"bridge step {done}/{h.nfe}")
        with torch.enable_grad():
            x_in = x_t.detach().requires_grad_(True)
            x0 = bridge.predict_x0(x_in, step)
            logits = method.classifier(classifier_view(x0, h.classifier_input))
            objective = logits.log_softmax(1).gather(1, target[:, None]).sum()
            (grad,) = torch.autograd.grad(objective, x_in)
        update = torch.zeros_like(grad)  # Adam's update of a zero parameter: -direction
        adam.step(update, grad, rows)
        direction = -update
        if first_norm is None:
            first_norm = direction.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)
        return x_in.detach() + h.s * direction / first_norm, x0.detach()

    x_t = bridge.inpaint(x_start, region, steps, guide, fresh)
    evals = torch.full((len(x),), done, dtype=torch.long, device=x.device)
    return ((x_t.clamp(-1, 1) + 1) / 2), evals
