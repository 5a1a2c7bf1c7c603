"""Regions R for region-constrained counterfactuals: binary (B,1,H,W) masks, one per sample.

Sources (any region-constrained method can reuse them):

- ``ig``: Integrated Gradients of the predicted class, |attribution| summed over channels and over
  a grid of c x c cells; the highest cells are taken until they cover a fraction ``a`` of the image.
  The cell size is given, as in the RCSB paper, in pixels of a 256-pixel image and scaled to the
  task's resolution: ``c_task = max(1, round(c * H / 256))`` (c = 4 is 1 pixel at 64 x 64), so a
  cell covers the same share of the image as in the paper.
- ``freeform``: random brush strokes with an area share drawn in [lo, hi] (the paper's Table 2B
  protocol), from the sample's own generator, so every method sees the same mask for a sample.
- ``gt_object``: the ground-truth object mask of a synthetic task (the analogue of the paper's
  segmenter-given "exact regions", Table 2A).
- ``user``: masks given with ``cfbench run --regions DIR`` (PNG per sample id, read by
  ``cfbench/user_regions.py``), in ``Batch.regions``.
"""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F

from cfbench.api.types import Batch
from cfbench.errors import UserError
from cfbench.strokes import freeform

SOURCES = ("auto", "ig", "freeform", "gt_object", "user")
PAPER_RESOLUTION = 256


def scaled_cell(c: int, image_size: int) -> int:
    """Cell size in pixels of this task for a cell of ``c`` pixels at the paper's 256 x 256."""
    return max(1, round(c * image_size / PAPER_RESOLUTION))


def top_cells(attribution: torch.Tensor, a: float, cell: int) -> torch.Tensor:
    """Union of the highest-scoring ``cell`` x ``cell`` cells of a (B,1,H,W) non-negative map that
    together cover a share ``a`` of the image (at least one cell); ties go to the earlier cell."""
    h, w = attribution.shape[-2:]
    gh, gw = math.ceil(h / cell), math.ceil(w / cell)
    padded = F.pad(attribution, (0, gw * cell - w, 0, gh * cell - h))
    scores = F.avg_pool2d(padded, cell).flatten(1)  # (B, gh*gw)
    k = min(gh * gw, max(1, round(a * h * w / cell**2)))
    order = torch.argsort(-scores, dim=1, stable=True)[:, :k]
    chosen = torch.zeros_like(scores).scatter_(1, order, 1.0).view(-1, 1, gh, gw)
    full = chosen.repeat_interleave(cell, 2).repeat_interleave(cell, 3)
    return full[..., :h, :w]


def integrated_gradients(
    classifier, images: torch.Tensor, steps: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(|IG| summed over channels (B,1,H,W), classifier evaluations per sample) for the predicted
    class, from a black baseline (``pixel_integrated_gradients``, all steps in one batch)."""
    from cfbench.methods.attributions import pixel_integrated_gradients

    with torch.no_grad():
        predicted = classifier(images).argmax(1)
    attr = pixel_integrated_gradients(
        classifier, images, predicted, steps, chunk=len(images) * steps
    )
    nfe = torch.full((len(images),), steps + 1, dtype=torch.long, device=images.device)
    return attr.abs().sum(1, keepdim=True), nfe


def user_regions(batch: Batch, method: str) -> torch.Tensor:
    if batch.regions is None:
        raise UserError(
            f"{method}: region='user' needs region masks: pass `cfbench run --regions DIR` "
            "with one PNG per sample id (white = editable region)."
        )
    return (batch.regions > 0.5).float()


def ground_truth_object(task, sample_ids: list[str], method: str) -> torch.Tensor:
    if not getattr(task, "has_ground_truth", False):
        raise UserError(
            f"{method}: region='gt_object' needs a task with ground-truth masks (a synthetic "
            f"task); '{task.name}' has none. Use region=ig, freeform or user."
        )
    return (task.load(sample_ids).gt_masks["object"] > 0.5).float()


def extract(
    source: str,
    batch: Batch,
    task,
    classifier,
    *,
    a: float,
    c: int,
    ig_steps: int,
    freeform_area: tuple[float, float],
    method: str,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(regions (B,1,H,W) in {0,1}, classifier evaluations spent per sample) for a region source.

    ``auto`` is ``user`` when the run was given ``--regions`` and ``ig`` otherwise.
    """
    if source not in SOURCES:
        raise UserError(
            f"{method}: unknown region source '{source}'; choose one of {', '.join(SOURCES)}."
        )
    if source == "auto":
        source = "user" if batch.regions is not None else "ig"
    x = batch.images
    no_cost = torch.zeros(len(x), dtype=torch.long, device=x.device)
    if source == "user":
        return user_regions(batch, method).to(x.device), no_cost
    if source == "gt_object":
        return ground_truth_object(task, batch.sample_ids, method).to(x.device), no_cost
    if source == "freeform":
        if batch.generators is None:
            raise ValueError("free-form regions need the batch's per-sample generators")
        return freeform(batch.generators, x.shape[-1], *freeform_area).to(x.device), no_cost
    if not 0 < a <= 1:
        raise UserError(f"{method}: the region's area fraction a must be in (0, 1] (got {a}).")
    attribution, nfe = integrated_gradients(classifier, x, ig_steps)
    return top_cells(attribution, a, scaled_cell(c, x.shape[-1])), nfe
