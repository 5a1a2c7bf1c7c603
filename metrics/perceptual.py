"""LPIPS (Zhang et al. 2018, the ``lpips`` package, AlexNet backbone) between x and x_cf.

Without torchvision's AlexNet weights in torch's hub cache the column stays empty and run.json says
why (``cfbench.perceptual``)."""

from __future__ import annotations

import functools

import torch

from cfbench.api.metric import Metric, SampleContext
from cfbench.perceptual import backbone_checkpoint, lpips_network


class LPIPS(Metric):
    name = "LPIPS"
    higher_is_better = False
    tolerance = (0.02, 0.0)

    def unavailable(self):
        path = backbone_checkpoint()
        if not path.exists():
            return (
                f"LPIPS needs torchvision's AlexNet weights at {path} (offline: copy "
                f"{path.name} there); cfbench does not download them or use random weights"
            )
        return None

    @functools.cached_property
    def model(self):
        return lpips_network("alex", self.device)

    def per_sample(self, ctx: SampleContext):
        with torch.no_grad():
            d = self.model(ctx.batch.images, ctx.counterfactuals.images, normalize=True)
        return {"LPIPS": d.flatten()}
