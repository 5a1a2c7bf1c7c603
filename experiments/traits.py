"""Trait isolation (the SLCF paper's Figure 4): which sparse-autoencoder features a counterfactual
changes, and what each of them looks like on its own.

The SLCF counterfactual of one sample is generated; the task's SAE features of the classifier's
penultimate activations are ranked by |h_enc(x_cf) - h_enc(x)|; then, for each of the top
features, SLCF's two-stage loop runs again with the class loss replaced by pushing that one
feature toward its counterfactual value (adding or removing the trait). The trait edits of one
sample run as one batch, one row per feature. ``cfbench traits`` writes the figure and a JSON of
the numbers; ``isolate_traits`` is the Python API. It uses SLCF only through ``SLCF.edit``
(the two-stage localized edit toward any goal).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from cfbench import seeding
from cfbench.api.classifier import split
from cfbench.api.types import Batch
from cfbench.catalog import METHODS

# SLCF's goal: (x_cf of the active rows, those rows) -> (per-sample loss, goal reached)
Goal = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


@dataclass
class TraitEdit:
    feature: int
    before: float  # h_k(x)
    counterfactual: float  # h_k of the full counterfactual (the value pushed toward)
    after: float  # h_k of this trait edit
    reached: bool  # |after - counterfactual| <= tolerance * |counterfactual - before|
    steps: int
    other_features_l1: float  # sum over j != k of |h_j(edit) - h_j(x)|: how isolated the edit is
    prediction: int
    target_probability: float
    image: torch.Tensor = field(repr=False)


@dataclass
class TraitReport:
    task: str
    sample_id: str
    source: int
    target: int
    class_names: tuple[str, ...]
    original: torch.Tensor = field(repr=False)
    counterfactual: torch.Tensor = field(repr=False)
    counterfactual_prediction: int = -1
    feature_change_l1: float = 0.0  # ||h_enc(x_cf) - h_enc(x)||_1 of the full counterfactual
    edits: list[TraitEdit] = field(default_factory=list)

    def to_json(self) -> dict:
        out = {
            k: v
            for k, v in asdict(self).items()
            if k not in ("original", "counterfactual", "edits")
        }
        out["class_names"] = list(self.class_names)
        out["edits"] = [{k: v for k, v in asdict(e).items() if k != "image"} for e in self.edits]
        return out


def trait_goal(
    features,
    sae,
    index: torch.Tensor,
    value: torch.Tensor,
    start: torch.Tensor,
    lambda_c: float,
    tolerance: float,
) -> Goal:
    """Loss lambda_c * |h_k(x') - v| / |v - h_k(x)| per row (feature k = ``index``); reached once
    the remaining gap is at most ``tolerance`` of the initial one. To add a trait (v > 0) the
    distance is taken before the ReLU, which has a gradient while the feature is still off."""
    gap0 = (value - start).abs().clamp_min(1e-6)

    def goal(x_cf, rows):
        pre = sae.pre_activation(features(x_cf)).gather(1, index[rows, None]).squeeze(1)
        v = value[rows]
        dist = torch.where(v > 0, (pre - v).abs(), pre.clamp_min(0))
        reached = (pre.clamp_min(0) - v).abs() <= tolerance * gap0[rows]
        return lambda_c * dist / gap0[rows], reached

    return goal


def isolate_traits(
    task,
    sample_id: str,
    top: int = 5,
    seed: int = 0,
    tolerance: float = 0.1,
    device: torch.device | None = None,
    **slcf_hparams,
) -> TraitReport:
    """The SLCF counterfactual of ``sample_id`` and one single-feature edit per top-changed
    feature."""
    device = device or task.device
    slcf = METHODS.build("slcf", task, device, **slcf_hparams)
    features, head = split(task.classifier, task.image_size)
    sae = task.component("sae")
    samples = task.load([sample_id])
    x = samples.images.to(device)
    source = samples.labels.to(device)
    target = task.target_of(source)
    batch = Batch(
        x, source, target, [sample_id], generators=seeding.generators_for(seed, [sample_id])
    )
    cf = slcf.generate(batch).images
    with torch.no_grad():
        h0 = sae.encode(features(x))[0]
        h_cf = sae.encode(features(cf))[0]
        cf_pred = int(head(features(cf)).argmax(1))
    change = h_cf - h0
    order = change.abs().argsort(descending=True)[:top]
    order = order[change[order] != 0]

    k = len(order)
    if k == 0:  # the counterfactual left every SAE feature unchanged
        return TraitReport(
            task.name,
            sample_id,
            int(source[0]),
            int(target[0]),
            tuple(task.class_names),
            x[0].cpu(),
            cf[0].cpu(),
            cf_pred,
            0.0,
            [],
        )
    xs = x.repeat(k, 1, 1, 1)
    ids = [f"{sample_id}/feature{int(i)}" for i in order]
    goal = trait_goal(
        features, sae, order, h_cf[order], h0[order], slcf.hparams.lambda_c, tolerance
    )
    trait_batch = Batch(
        xs, source.repeat(k), target.repeat(k), ids, generators=seeding.generators_for(seed, ids)
    )
    stage2 = slcf.edit(trait_batch, goal, goal).stage2
    with torch.no_grad():
        feats = features(stage2.images)
        h_edit = sae.encode(feats)
        probs = head(feats).softmax(1)
    edits = []
    for row, idx in enumerate(order.tolist()):
        others = (h_edit[row] - h0).abs()
        others[idx] = 0
        edits.append(
            TraitEdit(
                feature=idx,
                before=float(h0[idx]),
                counterfactual=float(h_cf[idx]),
                after=float(h_edit[row, idx]),
                reached=bool(stage2.done[row]),
                steps=int(stage2.steps[row]),
                other_features_l1=float(others.sum()),
                prediction=int(probs[row].argmax()),
                target_probability=float(probs[row, target[0]]),
                image=stage2.images[row].cpu(),
            )
        )
    return TraitReport(
        task.name,
        sample_id,
        int(source[0]),
        int(target[0]),
        tuple(task.class_names),
        x[0].cpu(),
        cf[0].cpu(),
        cf_pred,
        float(change.abs().sum()),
        edits,
    )


def trait_figure(report: TraitReport):
    """Top row: original, full counterfactual, one trait edit per feature; bottom row: |edit|."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = report.class_names
    panels = [
        (report.original, f"original\n{names[report.source]}"),
        (report.counterfactual, f"counterfactual\npred {names[report.counterfactual_prediction]}"),
    ]
    panels += [
        (e.image, f"feature {e.feature}\n{e.before:.2f}->{e.after:.2f} (cf {e.counterfactual:.2f})")
        for e in report.edits
    ]
    fig, axes = plt.subplots(2, len(panels), figsize=(1.9 * len(panels), 4.0), squeeze=False)
    for c, (img, title) in enumerate(panels):
        axes[0, c].imshow(img.permute(1, 2, 0).clamp(0, 1).numpy(), interpolation="nearest")
        axes[0, c].set_title(title, fontsize=7)
        diff = (img - report.original).abs().sum(0)
        axes[1, c].imshow(diff.numpy(), cmap="magma", vmin=0, interpolation="nearest")
        axes[1, c].set_title("|x' - x|" if c else "", fontsize=7)
        for ax in axes[:, c]:
            ax.axis("off")
    fig.suptitle(
        f"{report.task} sample {report.sample_id}: SAE traits of the counterfactual", fontsize=9
    )
    return fig


def write_traits(report: TraitReport, out: Path) -> tuple[Path, Path]:
    """Write ``traits.png`` and ``traits.json`` into ``out``; returns their paths."""
    from cfbench.figures import save_figure
    from cfbench.results import write_json

    out.mkdir(parents=True, exist_ok=True)
    png, js = out / "traits.png", out / "traits.json"
    fig = trait_figure(report)
    save_figure(fig, png)
    write_json(js, report.to_json())
    return png, js


def add_command(sub) -> None:
    from cfbench.cli import task_options

    tr = sub.add_parser(
        "traits",
        parents=[task_options()],
        help="isolate the SAE traits a sample's SLCF counterfactual changes",
    )
    tr.add_argument("--sample", required=True, help="sample id, e.g. 00003")
    tr.add_argument(
        "--top", type=int, default=5, help="number of SAE features to isolate (default 5)"
    )
    tr.add_argument(
        "--out", type=Path, default=None, help="directory (default results/traits/<task>-<sample>)"
    )
    tr.set_defaults(func=_command)


def _command(args) -> int:
    from cfbench.catalog import TASKS
    from cfbench.device import resolve_device
    from cfbench.errors import UserError
    from cfbench.results import file_stem

    if args.top < 1:
        raise UserError(f"--top must be at least 1 (got {args.top}).")
    task = TASKS.build(args.task, device=resolve_device(args.device))
    report = isolate_traits(task, args.sample, top=args.top, seed=args.seed)
    out = args.out or Path("results/traits") / f"{args.task}-{file_stem(args.sample)}"
    png, js = write_traits(report, out)
    for e in report.edits:
        print(
            f"feature {e.feature:4d}: {e.before:.3f} -> {e.after:.3f} (counterfactual "
            f"{e.counterfactual:.3f}), "
            f"other features changed by {e.other_features_l1:.3f}, p(target) "
            f"{e.target_probability:.2f}"
        )
    print(f"Figure: {png}\nNumbers: {js}")
    return 0
