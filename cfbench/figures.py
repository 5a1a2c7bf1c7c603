"""Figures written into a run directory, as the VCE papers show them.

- ``triplets_<method>.png`` (Figure 2 of the papers): original, counterfactual, |difference|.
- ``masks_<method>.png`` (Figure 5): the method's mask overlaid on the original.
- ``compare.png`` (runs of several methods): a row per method on the same samples, so the methods
  are compared at a glance; a counterfactual that flips the classifier but not the oracle
  (``fooled`` in samples.parquet) is titled "fooled: oracle disagrees" in red.
- a metric's own figure where it draws one (``Metric.figure``: COUT's mean curves,
``cout_curves.png``).
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from cfbench.results import RunDir, load_pngs  # noqa: E402

FIGURE_SAMPLES = 6
COMPARE_SAMPLES = 3


def write_run_figures(
    run: RunDir, methods: list[str], sample_ids: list[str], metrics: dict
) -> None:
    run.figures.mkdir(parents=True, exist_ok=True)
    ids = sample_ids[:FIGURE_SAMPLES]
    original = load_pngs(run.images(), ids)
    for method in methods:
        _save(triplet_figure(run, method, ids, original), run, f"triplets_{method}.png")
        if run.masks(method).exists():
            _save(mask_figure(run, method, ids, original), run, f"masks_{method}.png")
    samples = pd.read_parquet(run.samples) if run.samples.exists() else None
    if len(methods) > 1:
        figure = comparison_figure(run, methods, ids[:COMPARE_SAMPLES], original, samples)
        _save(figure, run, "compare.png")
    for metric in metrics.values():
        drawn = metric.figure(samples, methods) if samples is not None else None
        if drawn is not None:
            _save(drawn[1], run, drawn[0])


def save_figure(fig, path) -> None:
    """Write a figure atomically (a temporary file renamed into place, with the user's umask), so an
    interrupt never leaves a torn PNG, and close it."""
    import io

    from cfbench.results import atomic_write_bytes

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())


def _save(fig, run: RunDir, name: str) -> None:
    save_figure(fig, run.figures / name)


def _grid(rows: int, cols: int):
    return plt.subplots(rows, cols, figsize=(1.8 * cols, 1.8 * rows), squeeze=False)


def triplet_figure(run: RunDir, method: str, ids: list[str], original):
    """Rows: samples. Columns: original, counterfactual, channel-summed |x_cf - x|."""
    cf = load_pngs(run.images(method), ids)
    fig, axes = _grid(len(ids), 3)
    for r, sid in enumerate(ids):
        panels = [
            (original[r].permute(1, 2, 0), None, f"{sid} original"),
            (cf[r].permute(1, 2, 0), None, "counterfactual"),
            ((cf[r] - original[r]).abs().sum(0), "magma", "|x_cf - x|"),
        ]
        for ax, (img, cmap, title) in zip(axes[r], panels):
            ax.imshow(img.numpy(), cmap=cmap, interpolation="nearest")
            ax.set_title(title, fontsize=7)
            ax.axis("off")
    fig.suptitle(method, fontsize=9)
    return fig


def mask_figure(run: RunDir, method: str, ids: list[str], original):
    """The method's mask (jet, translucent) over each original, in one row."""
    masks = load_pngs(run.masks(method), ids)
    fig, axes = _grid(1, len(ids))
    for ax, sid, img, mask in zip(axes[0], ids, original, masks):
        ax.imshow(img.permute(1, 2, 0).numpy(), interpolation="nearest")
        ax.imshow(mask[0].numpy(), cmap="jet", alpha=0.45, vmin=0, vmax=1)
        ax.set_title(sid, fontsize=7)
        ax.axis("off")
    fig.suptitle(f"{method}: mask", fontsize=9)
    return fig


def comparison_figure(run: RunDir, methods: list[str], ids: list[str], original, samples=None):
    """Rows: methods. Per sample four columns: original, counterfactual, |x_cf - x|, mask (blank
    where the method has none); a counterfactual the oracle does not read as the target while the
    classifier does is marked."""
    fooled = set()
    if samples is not None and "fooled" in samples:
        hits = samples[samples["fooled"].fillna(False).astype(bool)]
        fooled = set(zip(hits["method"], hits["sample_id"]))
    fig, axes = _grid(len(methods), 4 * len(ids))
    for r, method in enumerate(methods):
        cf = load_pngs(run.images(method), ids)
        masks = load_pngs(run.masks(method), ids) if run.masks(method).exists() else None
        for s, sid in enumerate(ids):
            tricked = (method, sid) in fooled
            panels = [
                (original[s].permute(1, 2, 0), None, sid),
                (
                    cf[s].permute(1, 2, 0),
                    None,
                    "fooled: oracle disagrees" if tricked else "counterfactual",
                ),
                ((cf[s] - original[s]).abs().sum(0), "magma", "|x_cf - x|"),
                (None if masks is None else masks[s][0], "jet", "mask"),
            ]
            for c, (img, cmap, title) in enumerate(panels):
                ax = axes[r][4 * s + c]
                if img is not None:
                    scale = {"vmin": 0, "vmax": 1} if title == "mask" else {}
                    ax.imshow(img.numpy(), cmap=cmap, interpolation="nearest", **scale)
                ax.set_title(
                    title, fontsize=7, color="red" if title.startswith("fooled") else "black"
                )
                ax.axis("off")
        axes[r][0].text(
            -0.15,
            0.5,
            method,
            transform=axes[r][0].transAxes,
            rotation=90,
            ha="right",
            va="center",
            fontsize=9,
        )
    return fig
