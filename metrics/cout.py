"""COUT, the counterfactual transition score (Khorram & Fuxin 2022), as ACE, RCSB and SLCF report
it.

Counterfactual pixels are inserted into the original in the order of an importance map (by default
the channel-summed |x_cf - x|, normalised to [0, 1]; a smaller map, e.g. a latent mask, is
bilinearly upsampled first), max(1, H*W // 50) pixels per step. After every step the classifier's
softmax probabilities of the source and the target class are recorded. COUT is
AUPC(target) - AUPC(source), trapezoid rule over the inserted fraction, so it lies in [-1, 1]:
high when the few most-changed pixels already carry the class change.

Everything is batched: all samples and several insertion steps go through the classifier in one
forward pass, in chunks of at most ``max_images`` images.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch.nn import functional as F

from cfbench.api.metric import Metric, Option, SampleContext

MAX_IMAGES = 512  # images per classifier call; bounds memory independently of the batch size


def insertion_counts(num_pixels: int, rule: str = "cfbench") -> tuple[torch.Tensor, torch.Tensor]:
    """(pixels inserted, x-position of the point) at each step, s = max(1, num_pixels // 50):
    cfbench 0, s, 2s, ..., num_pixels at their own positions; ACE the same steps, but its last
    partial step counts as a full one (position ceil(N/s) s, beyond N)."""
    step = max(1, num_pixels // 50)
    positions = torch.arange(0, num_pixels + step, step)
    if rule == "cfbench":
        counts = torch.unique_consecutive(positions.clamp_max(num_pixels))
        return counts, counts
    positions = torch.arange(0, -(-num_pixels // step) * step + 1, step)
    return positions.clamp_max(num_pixels), positions


@dataclass
class Transition:
    fractions: torch.Tensor  # (S,) inserted share of the pixels
    source: torch.Tensor  # (B, S) p(source class) along the insertion
    target: torch.Tensor  # (B, S) p(target class)

    @property
    def cout(self) -> torch.Tensor:
        """(B,) AUPC(target) - AUPC(source)."""
        return torch.trapezoid(self.target, self.fractions, dim=1) - torch.trapezoid(
            self.source, self.fractions, dim=1
        )


def importance_order(
    x: torch.Tensor,
    x_cf: torch.Tensor,
    order_map: torch.Tensor | None = None,
    rule: str = "cfbench",
) -> torch.Tensor:
    """(B, H*W) rank of every pixel in the insertion order (0 = inserted first).

    cfbench: the channel sum of the 8-bit changes, integers, sorted stably (ties keep raster order,
    and float rounding cannot reorder them); ACE: (v - min) / (max - min) of the channel-summed
    float |x_cf - x|, sorted by ``argsort`` (not stable). A given ``order_map`` (a mask) is
    upsampled bilinearly and normalised by its maximum."""
    b, _, h, w = x.shape
    if order_map is not None:
        if order_map.shape[-2:] != (h, w):
            order_map = F.interpolate(
                order_map.float(), size=(h, w), mode="bilinear", align_corners=False
            )
        flat = order_map.flatten(1)
        flat = flat / flat.amax(1, keepdim=True).clamp_min(1e-12)
        order = torch.sort(flat, dim=1, descending=True, stable=True).indices
    elif rule == "cfbench":
        flat = ((x_cf * 255).round() - (x * 255).round()).abs().sum(1).flatten(1)
        order = torch.sort(flat, dim=1, descending=True, stable=True).indices
    else:
        flat = (x_cf - x).abs().sum(1).flatten(1)
        flat = flat - flat.amin(1, keepdim=True)
        flat = flat / flat.amax(1, keepdim=True)
        order = torch.argsort(flat, dim=1, descending=True)
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(h * w, device=x.device).expand(b, -1).contiguous())
    return rank


@torch.no_grad()
def transition(
    classifier: torch.nn.Module,
    x: torch.Tensor,
    x_cf: torch.Tensor,
    source: torch.Tensor,
    target: torch.Tensor,
    order_map: torch.Tensor | None = None,
    max_images: int = MAX_IMAGES,
    rule: str = "cfbench",
) -> Transition:
    b, c, h, w = x.shape
    rank = importance_order(x, x_cf, order_map, rule)
    counts, positions = insertion_counts(h * w, rule)
    counts = counts.to(x.device)
    delta = x_cf - x
    rows = torch.arange(b, device=x.device)
    p_src, p_tgt = [], []
    per_call = max(1, max_images // b)
    for start in range(0, len(counts), per_call):
        chunk = counts[start : start + per_call]
        inserted = (rank[:, None, :] < chunk[None, :, None]).view(b, len(chunk), 1, h, w)
        images = (x[:, None] + delta[:, None] * inserted).flatten(0, 1)
        probs = classifier(images).softmax(1).view(b, len(chunk), -1)
        p_src.append(probs[rows, :, source])
        p_tgt.append(probs[rows, :, target])
    fractions = positions.to(x.device, x.dtype) / (h * w)
    return Transition(fractions, torch.cat(p_src, 1), torch.cat(p_tgt, 1))


class CounterfactualTransition(Metric):
    """COUT per sample under the protocol's ordering and integration rule; the probability curves
    are stored too, for the mean-curve figure. The SLCF protocol averages the two directions'
    means (for a classifier of more than two classes) and resizes the images first."""

    name = "COUT"
    higher_is_better = True
    tolerance = (0.05, 0.0)
    options = {
        "rule": Option("cfbench", ("cfbench", "ace"), doc="pixel order and integration"),
        "average": Option(
            "samples",
            ("samples", "directions"),
            doc="mean over samples, or of the per-direction means (classifiers of > 2 classes)",
        ),
        "size": Option(None, (None,), int, "side the images are resized to first"),
    }

    def per_sample(self, ctx: SampleContext):
        x, x_cf = ctx.batch.images, ctx.counterfactuals.images
        if self.rules["size"] is not None:
            from torchvision.transforms.functional import resize

            x, x_cf = (resize(im, [self.rules["size"]] * 2, antialias=True) for im in (x, x_cf))
        t = transition(
            self.task.classifier,
            x,
            x_cf,
            ctx.batch.source,
            ctx.batch.target,
            rule=self.rules["rule"],
        )
        return {"COUT": t.cout, "COUT_curve_source": t.source, "COUT_curve_target": t.target}

    def summarize(self, run, method, rows):
        binary = len(self.task.class_names) <= 2
        if self.rules["average"] == "samples" or binary or rows.empty:
            return super().summarize(run, method, rows)
        means = rows.groupby("source")["COUT"].mean()
        value, ci = super().summarize(run, method, rows)
        return (float(means.mean()) if value is not None else None), ci

    def figure(self, samples, methods):
        if "COUT_curve_target" not in samples:
            return None
        num_pixels = (self.rules["size"] or self.task.image_size) ** 2
        return "cout_curves.png", curve_figure(samples, methods, num_pixels, self.rules["rule"])


def curve_figure(samples: pd.DataFrame, methods: list[str], num_pixels: int, rule: str = "cfbench"):
    """Mean probability curves along the insertion (solid: target, dashed: source), COUT in the
    legend."""
    import matplotlib.pyplot as plt

    fractions = insertion_counts(num_pixels, rule)[1].numpy() / num_pixels
    fig, ax = plt.subplots(figsize=(4.2, 3.0))
    for i, method in enumerate(methods):
        rows = samples[samples["method"] == method]
        if rows.empty:
            continue
        target, source = (
            np.stack(rows[c].to_numpy()) for c in ("COUT_curve_target", "COUT_curve_source")
        )
        colour = f"C{i}"
        ax.plot(
            fractions,
            target.mean(0),
            color=colour,
            label=f"{method} (COUT {rows['COUT'].mean():.3f})",
        )
        ax.plot(fractions, source.mean(0), color=colour, linestyle="--")
    ax.set_xlabel("share of counterfactual pixels inserted")
    ax.set_ylabel("mean probability")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=7, title="solid: target, dashed: source", title_fontsize=7)
    return fig
