"""BB-LIG (Alg. 4, Eq. 6 of the GCD paper; released ``bblig/src/experiment/sig.py``): where a
counterfactual's edit matters to the classifier.

The baseline is the first line-search alpha with p(source) < ``lig_threshold`` (an all-zero map
when there is none); a fresh path of ``lig_path`` 8-bit renders runs from alpha 0 to it; the
gradient of f per pixel, as finite differences between consecutive renders (zero where a pixel did
not change; the paper, black-box) or exactly (``lig_gradient="exact"``, the code's default), is
averaged, times (x_0 - x_baseline), summed over channels; its absolute value is divided by the
level of its top 2 % of mass and clamped at 1 (the code's normalisation).
"""

from __future__ import annotations

import torch


def bb_lig(method, x, found: dict, source, target) -> torch.Tensor:
    """BB-LIG maps (B,1,H,W) as Alg. 4 and the released ``bblig/src/experiment/sig.py``: a
    fresh path of ``lig_path`` 8-bit renders from alpha 0 to the baseline; the integrand is f
    (the code integrates its logit), differentiated between consecutive renders or exactly;
    an all-zero map where the search found no baseline."""
    h = method.hparams
    has_baseline = ~found["baseline"].isnan()
    end = found["baseline"].nan_to_num(0.0).view(-1, 1)
    total = torch.zeros_like(x)
    first = previous = None
    for i, t in enumerate(torch.linspace(0, 1, h.lig_path).tolist()):
        method.progress(f"BB-LIG path {i + 1}/{h.lig_path}")
        if i == 0:  # alpha 0: the line search's first render
            img = found["origin"]
        else:
            img = method.dae.decode(
                found["z"] + t * end * found["direction"], found["x_T"], h.search_steps
            )
        img = (img * 255).round() / 255  # the 8-bit images the classifier would see
        if h.lig_gradient == "exact":  # the code's default: not black-box
            with torch.enable_grad():
                img.requires_grad_(True)
                f = method.score(method.task.classifier(img), source, target)
                (grad,) = torch.autograd.grad(f.sum(), img)
            total += grad
            img = img.detach()
        else:
            f = method.score(method.classifier(img), source, target)
            if previous is not None:
                dx, df = img - previous[0], (f - previous[1]).view(-1, 1, 1, 1)
                total += torch.where(dx != 0, df / dx.where(dx != 0, 1.0), 0.0)
            previous = (img, f)
        first = img if first is None else first
    steps = h.lig_path if h.lig_gradient == "exact" else h.lig_path - 1
    attribution = ((first - img) * total / steps).sum(1, keepdim=True).abs()
    return clip_top(attribution * has_baseline.view(-1, 1, 1, 1))


def clip_top(attribution: torch.Tensor, percent: float = 2.0) -> torch.Tensor:
    """Maps (B,1,H,W) >= 0 divided by the value above which their top ``percent`` % of total mass
    lies and clamped at 1: the normalisation of the released BB-LIG (``normalize_attr``,
    ``outlier_perc=2``; captum's own helper is private and works on one HWC numpy image)."""
    ordered = attribution.flatten(1).sort(1).values
    mass = ordered.cumsum(1)
    at = (mass > mass[:, -1:] * (100 - percent) / 100).int().argmax(1, keepdim=True)
    threshold = ordered.gather(1, at).clamp_min(1e-12).view(-1, 1, 1, 1)
    return (attribution / threshold).clamp(max=1.0)
