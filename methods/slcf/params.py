"""SLCF's hyperparameters: the paper's defaults; the released configurations and the Table-3
ablations are presets in ``cfbench/catalog.py``."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from cfbench.api.method import HParams, hparam

MASKS = ("lag", "lig", "ig", "none")
SPACES = ("latent", "pixel")


@dataclass(frozen=True)
class SLCFParams(HParams):
    lr: float = hparam(0.01, "positive", "Adam step size on the latent offset")
    lambda_c: float = hparam(1.0, "nonnegative", "weight of the class loss")
    lambda_s: float = hparam(0.1, "nonnegative", "weight of the L1 sparsity of the offset")
    stage1_steps: int = hparam(
        25, "count", "at most this many stage-1 steps (the LAG accumulation)"
    )
    stage2_steps: int = hparam(500, "count", "at most this many stage-2 steps")
    sigma: float = hparam(
        3.0, "nonnegative", "Gaussian filter of the mask, in cells of the mask grid"
    )
    threshold: float = hparam(
        0.5, "fraction", "mask values below this share of the maximum are zeroed"
    )
    noise: float = hparam(
        0.01, "nonnegative", "std of the stage-2 perturbation of the masked latent"
    )
    confidence: float = hparam(0.5, "fraction", "stage 2 stops once p(target) reaches this")
    patience: int = hparam(1, "count", "... for this many consecutive steps")
    residual: bool = hparam(True, None, "return x + D(z + M dz) - D(z) instead of D(z + M dz)")
    mask: str = hparam("lag", MASKS, "attribution the mask is made from")
    space: str = hparam("latent", SPACES, "edit space")
    lambda_t: float = hparam(0.0, "nonnegative", "weight of the SAE trait loss (> 0: 'Ours + SAE')")
    ig_steps: int = hparam(50, "count", "integration steps of the LIG / IG masks")
    pixel_cell: int = hparam(4, "count", "pixel edits: mask cell size in pixels")
    # Switches between the paper's text and the released code (the ``slcf_code*`` presets):
    stop_rule: str = hparam(
        "paper",
        ("paper", "code"),
        "paper: stage 1 stops at the flip, stage 2 at p(target) >= confidence; code: both "
        "stages stop once the prediction is the target and p(target) > confidence",
    )
    class_loss: str = hparam(
        "ce", ("ce", "logit"), "cross-entropy toward the target, or minus the target logit"
    )
    stage2_start: str = hparam(
        "stage1", ("stage1", "zero"), "stage 2 starts from the stage-1 offset, or from 0"
    )
    lag_sign: str = hparam(
        "abs",
        ("abs", "positive"),
        "LAG mask from |summed gradients|, or from their positive part only",
    )
    lag_stop_step: bool = hparam(
        True,
        None,
        "LAG includes the gradient of the step at which stage 1 stops; the released code breaks "
        "before that backward pass",
    )
    roundtrip: bool = hparam(
        False, None, "stage 1 classifies D(E(x_cf)) (one more autoencoder round trip)"
    )
    return_noiseless: bool = hparam(
        False,
        None,
        "return D(z + M dz) without the stage-2 perturbation (not "
        "re-checked), instead of the image verified at the stopping step",
    )
    sae_reference: str = hparam(
        "input", ("input", "reconstruction"), "trait loss: SAE codes of x or of D(E(x))"
    )
    sae_features: str = hparam(
        "pooled",
        ("pooled", "masked_spatial"),
        "trait loss on the pooled penultimate features (paper), or, as the released SAE "
        "pipeline, stage 2 classifies and reads SAE codes from the spatial features "
        "weighted by the stage-2 mask before pooling (stage 1 then has no trait loss)",
    )
    sae_loss: str = hparam(
        "sum", ("sum", "mean"), "trait loss: L1 summed over SAE features, or averaged (code)"
    )
    vae_size: int = hparam(
        0,
        "nonnegative",
        "the autoencoder's input side (0: the task's; the released code: 512, bilinear in, "
        "bicubic back); the synthetic stand-ins always take the task's",
    )
    units: str = hparam(
        "cfbench",
        ("cfbench", "code"),
        "code: lr, noise and lambda_s are in the released code's unscaled latent units and sigma "
        "in cells of its 64-cell latent grid; converted with the autoencoder's scaling factor "
        "and this task's grid",
    )


def effective_units(
    h: SLCFParams, ae, task, vae_size: int = 0
) -> tuple[float, float, float, float]:
    """(lr, noise, lambda_s, sigma) in cfbench's units. The released code edits the unscaled
    posterior mode on a 64 x 64 latent grid; cfbench's latents are scaled by the autoencoder's
    ``scaling_factor`` s, so a step or noise of v there is v * s here, an L1 weight is divided
    by s, and a filter of sigma cells there covers sigma * grid / 64 cells of this grid."""
    if h.units == "cfbench" or ae is None:
        return h.lr, h.noise, h.lambda_s, h.sigma
    scale = float(getattr(ae, "scale", 1.0))
    side = vae_size or task.image_size
    grid = side // latent_factor(ae, side)
    return h.lr * scale, h.noise * scale, h.lambda_s / scale, h.sigma * grid / 64


def units_record(h: SLCFParams, ae, side: int, vae_size: int, units: tuple) -> dict:
    """What run.json says of the latent edit: the autoencoder's input, its latent grid and, for
    ``units="code"``, the converted (lr, noise, lambda_s, sigma)."""
    grid = side // latent_factor(ae, side)
    found = {
        "autoencoder_input": f"{side} px, bilinear in and bicubic back (the released code's)"
        if vae_size
        else f"{side} px, the task's images as they are",
        "latent_grid": f"{grid}x{grid}",
    }
    if h.units == "cfbench":
        return found
    rule = (
        "released-code units converted: lr, noise x scaling_factor; lambda_s / scaling_factor; "
        "sigma x grid / 64"
    )
    return found | {
        "effective_units": dict(zip(("lr", "noise", "lambda_s", "sigma"), units)) | {"rule": rule}
    }


def latent_factor(ae, image_size: int) -> int:
    """How many pixels one latent cell spans (the autoencoder's downsampling factor)."""
    device = next(ae.parameters()).device
    with torch.no_grad():
        probe = torch.zeros(1, 3, image_size, image_size, device=device)
        return image_size // ae.encode(probe).shape[-1]
