"""Figures written into a run directory: counterfactual triplets with the method's mask."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from cfbench.results import RunDir, load_pngs  # noqa: E402

TRIPLET_SAMPLES = 6


def write_run_figures(run: RunDir, methods: list[str], sample_ids: list[str]) -> None:
    run.figures.mkdir(parents=True, exist_ok=True)
    ids = sample_ids[:TRIPLET_SAMPLES]
    original = load_pngs(run.images(), ids)
    for method in methods:
        fig = triplet_figure(run, method, ids, original)
        fig.savefig(run.figures / f"triplets_{method}.png", dpi=110, bbox_inches="tight")
        plt.close(fig)


def triplet_figure(run: RunDir, method: str, ids: list[str], original):
    """Rows: samples. Columns: original, counterfactual, |difference|, mask over the original."""
    cf = load_pngs(run.images(method), ids)
    has_mask = run.masks(method).exists()
    masks = load_pngs(run.masks(method), ids) if has_mask else None
    cols = 4 if has_mask else 3
    fig, axes = plt.subplots(len(ids), cols, figsize=(1.8 * cols, 1.8 * len(ids)), squeeze=False)
    for r, sid in enumerate(ids):
        diff = (cf[r] - original[r]).abs().sum(0)
        panels = [(original[r].permute(1, 2, 0), None, f"{sid} original"),
                  (cf[r].permute(1, 2, 0), None, "counterfactual"),
                  (diff, "magma", "|x_cf - x|")]
        if has_mask:
            panels.append((original[r].permute(1, 2, 0), None, "mask"))
        for c, (img, cmap, title) in enumerate(panels):
            ax = axes[r, c]
            ax.imshow(img.numpy(), cmap=cmap, interpolation="nearest")
            if title == "mask":
                ax.imshow(masks[r, 0].numpy(), cmap="jet", alpha=0.45, vmin=0, vmax=1)
            ax.set_title(title, fontsize=7)
            ax.axis("off")
    fig.suptitle(method, fontsize=9)
    return fig
