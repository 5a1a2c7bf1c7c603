"""Locality against ground truth: where the edit's L1 mass lies (synthetic tasks only)."""
from __future__ import annotations

import torch

from cfbench.metrics.base import Metric, SampleContext


def edit_mass_share(original: torch.Tensor, edited: torch.Tensor, region: torch.Tensor) -> torch.Tensor:
    """Share of sum_c |edited - original| that lies inside ``region`` (B,1,H,W); 0 if nothing changed."""
    mass = (edited - original).abs().sum(1, keepdim=True)
    total = mass.flatten(1).sum(1)
    inside = (mass * region).flatten(1).sum(1)
    return torch.where(total > 0, inside / total.clamp_min(1e-12), torch.zeros_like(total))


class _GroundTruthShare(Metric):
    higher_is_better: bool
    region: str

    def unavailable(self):
        if not getattr(self.task, "has_ground_truth", False):
            return f"task '{self.task.name}' has no ground-truth masks"
        return None

    def per_sample(self, ctx: SampleContext):
        region = ctx.samples.gt_masks[self.region].to(ctx.counterfactuals.images.device)
        return {self.name: edit_mass_share(ctx.batch.images, ctx.counterfactuals.images, region)}


class GroundTruthInside(_GroundTruthShare):
    """GT_IN: share of the edit's L1 mass inside the causal region (the coat)."""

    name = "GT_IN"
    higher_is_better = True
    region = "causal"


class GroundTruthSpurious(_GroundTruthShare):
    """GT_SPUR: share of the edit's L1 mass on the spurious background."""

    name = "GT_SPUR"
    higher_is_better = False
    region = "spurious"
