"""Locality against ground truth: where the edit's L1 mass lies (synthetic tasks only)."""

from __future__ import annotations

import torch

from cfbench.api.metric import Metric, SampleContext


def edit_mass_share(
    original: torch.Tensor, edited: torch.Tensor, region: torch.Tensor
) -> torch.Tensor:
    """Share of sum_c |edited - original| that lies inside ``region`` (B,1,H,W); 0 if nothing
    changed."""
    mass = (edited - original).abs().sum(1, keepdim=True)
    total = mass.flatten(1).sum(1)
    inside = (mass * region).flatten(1).sum(1)
    return torch.where(total > 0, inside / total.clamp_min(1e-12), torch.zeros_like(total))


class _GroundTruthShare(Metric):
    higher_is_better: bool
    region: str
    percent, decimals, tolerance = True, 1, (0.05, 0.0)

    def unavailable(self):
        if self.region not in self.task.ground_truth_regions:
            return f"task '{self.task.name}' has no ground-truth {self.region} masks"
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


def mask_auroc(scores: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """(B,) area under the ROC curve of per-pixel ``scores`` against a binary ``truth`` mask
    (scikit-learn's, ties count half); NaN where the mask is all one value."""
    from sklearn.metrics import roc_auc_score

    out = []
    for s, t in zip(scores.flatten(1).detach().cpu().numpy(), truth.flatten(1).cpu().numpy() > 0.5):
        out.append(roc_auc_score(t, s) if 0 < t.sum() < t.size else float("nan"))
    return torch.tensor(out, dtype=torch.float64)


class MaskAUROC(_GroundTruthShare):
    """AUROC: how well the method's mask (or an attribution map) ranks the causal region's pixels
    above the rest (SLCF Table 4's locality column; only on tasks with ground truth)."""

    name = "AUROC"
    higher_is_better = True
    percent, decimals = False, 3
    region = "causal"

    def per_sample(self, ctx: SampleContext):
        masks = ctx.counterfactuals.masks
        if masks is None:
            return {self.name: torch.full((len(ctx.batch),), float("nan"))}
        return {self.name: mask_auroc(masks, ctx.samples.gt_masks[self.region])}
