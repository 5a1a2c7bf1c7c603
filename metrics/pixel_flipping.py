"""PF: Quantus' PixelFlipping AUC of an attribution map (Bach et al. 2015; SLCF Table 4), lower is
better.

Pixels are replaced by black in descending order of the attribution and the classifier's softmax
probability of the explained class (the source) is recorded. Quantus flips single channel values
(the map is broadcast over channels); the step is the largest divisor of H*W that gives at least 48
steps. Quantus' AUC is the trapezoid with unit spacing, so it grows with the number of steps;
cfbench divides it by the number of intervals, which makes PF the mean probability along the curve,
in [0, 1] and comparable across image sizes. In a run, the attribution is the method's mask (methods
without a mask have no PF)."""

from __future__ import annotations

import numpy as np
import torch

from cfbench.api.metric import Metric, Option, SampleContext

MIN_STEPS = 48


def features_in_step(height: int, width: int, channels: int = 3) -> int:
    pixels = height * width
    limit = max(1, channels * pixels // MIN_STEPS)
    return max(d for d in range(1, limit + 1) if pixels % d == 0)


def flipping_curves(
    classifier: torch.nn.Module,
    x: torch.Tensor,
    labels: torch.Tensor,
    attributions: torch.Tensor,
    step: int | None = None,
) -> np.ndarray:
    """(B, steps) Quantus PixelFlipping curves: p(label) after each flipping step."""
    import quantus  # slow to import; only runs that score PF need it

    _, c, h, w = x.shape
    metric = quantus.PixelFlipping(
        features_in_step=step or features_in_step(h, w, c),
        perturb_baseline="black",
        disable_warnings=True,
        display_progressbar=False,
    )
    curves = metric(
        model=classifier,
        x_batch=x.detach().cpu().numpy(),
        y_batch=labels.cpu().numpy(),
        a_batch=attributions.detach().cpu().numpy(),
        device=str(x.device),
        softmax=True,
        batch_size=len(x),
    )
    return np.asarray(curves, dtype=float)


def pixel_flipping(classifier, x, labels, attributions, rule: str = "cfbench") -> np.ndarray:
    """(B,) AUC of the flipping curves: cfbench's normalised by the number of intervals, or SLCF's
    raw AUC (unit spacing) with ``features_in_step`` = H."""
    if rule == "slcf":
        curves = flipping_curves(classifier, x, labels, attributions, step=x.shape[-2])
        return np.trapezoid(curves, dx=1, axis=1)
    curves = flipping_curves(classifier, x, labels, attributions)
    return np.trapezoid(curves, dx=1, axis=1) / (curves.shape[1] - 1)


class PixelFlipping(Metric):
    name = "PF"
    higher_is_better = False
    tolerance = (0.03, 0.0)
    options = {
        "rule": Option("cfbench", ("cfbench", "slcf"), "step and AUC rule (see ``pixel_flipping``)")
    }

    def per_sample(self, ctx: SampleContext):
        masks = ctx.counterfactuals.masks
        if masks is None:
            return {"PF": torch.full((len(ctx.batch),), float("nan"))}
        values = torch.full((len(ctx.batch),), float("nan"), dtype=torch.float64)
        flat = masks.flatten(1)  # a constant mask (all zero, or a region that is the
        ordered = flat.amax(1) > flat.amin(1)  # whole image) orders nothing: no PF
        if ordered.any():
            rows = ordered.nonzero().squeeze(1)
            values[rows.cpu()] = torch.from_numpy(
                pixel_flipping(
                    self.task.classifier,
                    ctx.batch.images[rows],
                    ctx.batch.source[rows],
                    masks[rows],
                    self.rules["rule"],
                )
            ).to(values)
        return {"PF": values}
