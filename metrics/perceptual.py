"""LPIPS (Zhang et al. 2018, the ``lpips`` package, AlexNet backbone) between x and x_cf.

LPIPS needs torchvision's ImageNet AlexNet weights, which cfbench never downloads. Without them
in torch's hub cache the column stays empty and run.json says why: a randomly initialised
backbone would give numbers that look like LPIPS and mean nothing.
"""
from __future__ import annotations

import functools
from pathlib import Path

import torch

from cfbench.metrics.base import Metric, SampleContext


def backbone_checkpoint() -> Path:
    """Where torchvision looks for the AlexNet weights LPIPS builds on."""
    from torchvision.models import AlexNet_Weights

    return Path(torch.hub.get_dir()) / "checkpoints" / Path(AlexNet_Weights.IMAGENET1K_V1.url).name


class LPIPS(Metric):
    name = "LPIPS"
    higher_is_better = False
    tolerance = (0.02, 0.0)

    def unavailable(self):
        path = backbone_checkpoint()
        if not path.exists():
            return (f"LPIPS needs torchvision's AlexNet weights at {path} (offline: copy "
                    f"{path.name} there); cfbench does not download them or use random weights")
        return None

    @functools.cached_property
    def model(self):
        import lpips

        return lpips.LPIPS(net="alex", verbose=False).eval().to(self.device)

    def per_sample(self, ctx: SampleContext):
        with torch.no_grad():
            d = self.model(ctx.batch.images, ctx.counterfactuals.images, normalize=True)
        return {"LPIPS": d.flatten()}
