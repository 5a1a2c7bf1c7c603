"""LPIPS (Zhang et al. 2018, the ``lpips`` package, AlexNet backbone) between x and x_cf.

Without torchvision's AlexNet weights in torch's hub cache the column stays empty and run.json says
why (the task's ``lpips`` component, ``components/lpips.py``)."""

from __future__ import annotations

import torch

from cfbench.api.metric import Metric, SampleContext


class LPIPS(Metric):
    name = "LPIPS"
    higher_is_better = False
    tolerance = (0.02, 0.0)
    model = "lpips"

    def unavailable(self):
        return super().unavailable() or self.task.component(self.model).missing("alex")

    def per_sample(self, ctx: SampleContext):
        network = self.task.component(self.model).network("alex", self.device)
        with torch.no_grad():
            d = network(ctx.batch.images, ctx.counterfactuals.images, normalize=True)
        return {"LPIPS": d.flatten()}
