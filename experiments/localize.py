"""``cfbench localize``: SLCF's Table 4, how faithful attribution maps are, and where they point.

Every attribution explains the classifier's source-class logit on the original image and is
reduced to one (B,1,H,W) map (channel sum where a method attributes per channel):

  lime  LIME (captum, 8x8-pixel superpixels, black baseline)   ixg  Input x Gradient (captum)
  gc    Grad-CAM (grad-cam)                                    lc   LayerCAM (grad-cam)
  sc    Score-CAM (grad-cam)                                   gig  Guided IG (saliency)
  gbp   Guided Backprop                                        ig   Integrated Gradients (captum)
  lag   SLCF's latent aggregated gradients, through ``SLCF.explain`` (stage 1 toward the
        target, Gaussian-filtered and normalised like SLCF's mask but not thresholded)
  bblig GCD's black-box latent integrated gradients, through ``GCD.explain`` (tasks with a
        diffusion autoencoder; the directions are fitted once per task)

Scores: PF, Quantus pixel flipping of the signed map (``metrics/pixel_flipping.py``, lower is
better) and, on tasks with ground truth, AUROC of |map| against the causal mask (higher is
better), which no real benchmark can report. The output is a run directory like ``cfbench run``'s
(one "method" per attribution: ``samples.parquet``, ``metrics.csv``, ``run.json``, a figure),
written batch by batch through the runner's loop, so a killed localisation resumes.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import numpy as np
import pandas as pd
import torch
from torch.nn import functional as F

from cfbench import seeding
from cfbench.api.metric import SampleContext
from cfbench.api.types import Batch, Counterfactuals
from cfbench.batches import BatchLoop
from cfbench.catalog import METHODS, METRICS, TASKS
from cfbench.device import resolve_device
from cfbench.errors import UserError
from cfbench.results import RunDir, write_frame, write_json
from cfbench.runner import git_commit, package_versions
from cfbench.stats import bootstrap_half_width
from cfbench.tables import Layout, labelled_rows

# as `cfbench run`; directories are named localize-<task>-<time>
DEFAULT_ROOT = Path("results/runs")
LIME_CELL, LIME_SAMPLES = 8, 256
GIG_STEPS = 64
IG_STEPS = 50
FIGURE_SAMPLES = 4


def _channel_sum(a: torch.Tensor) -> torch.Tensor:
    return a.detach().sum(1, keepdim=True)


def lime(task, x, source, target):
    from captum.attr import Lime

    b, c, h, w = x.shape
    cells = torch.arange((h // LIME_CELL) * (w // LIME_CELL)).view(
        1, 1, h // LIME_CELL, w // LIME_CELL
    )
    mask = (
        F.interpolate(cells.float(), size=(h, w), mode="nearest")
        .long()
        .expand(b, c, h, w)
        .to(x.device)
    )
    return _channel_sum(
        Lime(task.classifier).attribute(
            x,
            target=source,
            feature_mask=mask,
            baselines=0.0,
            n_samples=LIME_SAMPLES,
            perturbations_per_eval=LIME_SAMPLES,
        )
    )


def input_x_gradient(task, x, source, target):
    from captum.attr import InputXGradient

    return _channel_sum(InputXGradient(task.classifier).attribute(x.clone(), target=source))


def integrated_gradients(task, x, source, target):
    from captum.attr import IntegratedGradients

    with torch.enable_grad():
        return _channel_sum(
            IntegratedGradients(task.classifier).attribute(
                x,
                baselines=torch.zeros_like(x),
                target=source,
                n_steps=IG_STEPS,
                internal_batch_size=256,
            )
        )


def cam_layer(model: torch.nn.Module, x: torch.Tensor) -> torch.nn.Module:
    """The last module (in execution order) that outputs a spatial feature map: the CAM layer."""
    seen: list[torch.nn.Module] = []
    hooks = [
        m.register_forward_hook(
            lambda m, i, o: (
                seen.append(m) if torch.is_tensor(o) and o.dim() == 4 and o.shape[-1] > 1 else None
            )
        )
        for m in model.modules()
    ]
    try:
        with torch.no_grad():
            model(x[:1])
    finally:
        for hook in hooks:
            hook.remove()
    return seen[-1]


def _cam(kind: str):
    """A grad-cam method (by class name) on ``cam_layer``, for the source class."""

    def attribute(task, x, source, target):
        import pytorch_grad_cam
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

        targets = [ClassifierOutputTarget(int(s)) for s in source]
        cam_class = getattr(pytorch_grad_cam, kind)
        with cam_class(model=task.classifier, target_layers=[cam_layer(task.classifier, x)]) as cam:
            maps = cam(input_tensor=x.clone().requires_grad_(True), targets=targets)
        return torch.from_numpy(maps).unsqueeze(1).to(x)

    return attribute


class _NumpyWithInterpolation:
    """numpy, plus the ``quantile(interpolation=...)`` keyword that saliency 0.2.1 still passes
    and numpy 2.4 removed (renamed ``method``)."""

    def __getattr__(self, name):
        return getattr(np, name)

    @staticmethod
    def quantile(a, q, interpolation="linear", **kwargs):
        return np.quantile(a, q, method=interpolation, **kwargs)


def guided_ig(task, x, source, target):
    import saliency.core as saliency
    from saliency.core import guided_ig as guided_ig_module

    def call_model(batch, call_model_args, expected_keys):
        inputs = torch.from_numpy(batch).permute(0, 3, 1, 2).to(x).requires_grad_(True)
        logits = task.classifier(inputs)
        (grad,) = torch.autograd.grad(logits[:, call_model_args].sum(), inputs)
        return {saliency.INPUT_OUTPUT_GRADIENTS: grad.permute(0, 2, 3, 1).cpu().numpy()}

    with mock.patch.object(guided_ig_module, "np", _NumpyWithInterpolation()):
        maps = [
            saliency.GuidedIG().GetMask(
                img.permute(1, 2, 0).cpu().numpy(),
                call_model,
                int(s),
                x_baseline=np.zeros(img.permute(1, 2, 0).shape, np.float32),
                x_steps=GIG_STEPS,
                max_dist=1.0,
                fraction=0.5,
            )
            for img, s in zip(x, source)
        ]
    return torch.from_numpy(np.stack(maps)).permute(0, 3, 1, 2).sum(1, keepdim=True).to(x)


def guided_backprop(task, x, source, target):
    """captum's Guided Backprop; it hooks nn.ReLU modules, which the synthetic classifier uses."""
    import warnings

    from captum.attr import GuidedBackprop

    with torch.enable_grad(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Setting backward hooks on ReLU")
        return _channel_sum(GuidedBackprop(task.classifier).attribute(x.clone(), target=source))


def latent_aggregated_gradients(task, x, source, target):
    slcf = METHODS.build("slcf", task, x.device)
    return slcf.explain(Batch(x, source, target, [str(i) for i in range(len(x))]))


def black_box_latent_integrated_gradients(task, x, source, target):
    """GCD's BB-LIG along its g-directions, fitted once per task (from its first samples)."""
    gcd = task.__dict__.get("_bblig_gcd")
    if gcd is None:
        gcd = task.__dict__["_bblig_gcd"] = METHODS.build("gcd", task, x.device)
        gcd.fit(task.sample_ids(64), 0, None)
    return gcd.explain(Batch(x, source, target, [str(i) for i in range(len(x))]))


ATTRIBUTIONS = {  # key -> (Table 4 row label, function(task, x, source, target) -> (B,1,H,W))
    "lime": ("LIME", lime),
    "ixg": ("Input×Gradient", input_x_gradient),
    "gc": ("Grad-CAM", _cam("GradCAM")),
    "lc": ("LayerCAM", _cam("LayerCAM")),
    "sc": ("Score-CAM", _cam("ScoreCAM")),
    "gig": ("Guided IG", guided_ig),
    "gbp": ("Guided Backprop", guided_backprop),
    "ig": ("IG", integrated_gradients),
    "lag": ("LAG", latent_aggregated_gradients),
    "bblig": ("BB-LIG (GCD)", black_box_latent_integrated_gradients),
}


def parse_attributions(spec: str) -> list[str]:
    keys = [k.strip() for k in spec.split(",") if k.strip()]
    unknown = [k for k in keys if k not in ATTRIBUTIONS]
    if unknown or not keys:
        raise UserError(
            f"Unknown attribution method(s) {', '.join(unknown) or '(none given)'}. Choose from: "
            + ", ".join(f"{k} ({v[0]})" for k, v in ATTRIBUTIONS.items())
            + "."
        )
    return keys


@dataclass
class LocalizeSpec:
    task: str
    attributions: list[str]
    n: int = 64
    batch_size: int = 32
    seed: int = 0
    device: str = "auto"
    out: Path | None = None


TABLE_4 = Layout(
    "Table 4 (localization). PF: Quantus pixel-flipping AUC of the source-class attribution, "
    "divided by the number of steps (lower is better); AUROC: |attribution| against the "
    "ground-truth causal region (synthetic tasks only)",
    ("PF", "AUROC"),
    ("Attribution",),
    labelled_rows(
        {k: (v[0],) for k, v in ATTRIBUTIONS.items()},
        ("Attribution",),
        "Table 4 (localization, `cfbench localize` directories)",
    ),
)


def localize(spec: LocalizeSpec) -> RunDir:
    """Score the attributions on the first ``n`` samples; resumable, one writer per directory."""
    if spec.n < 1 or spec.batch_size < 1:
        raise UserError(
            f"--n and --batch-size must be positive (got {spec.n} and {spec.batch_size})."
        )
    device = resolve_device(spec.device)
    task = TASKS.build(spec.task, device=device)
    ids = task.sample_ids(spec.n)
    config = {
        "kind": "localize",
        "task": spec.task,
        "n": len(ids),
        "seed": spec.seed,
        "attributions": spec.attributions,
    }
    out = spec.out or DEFAULT_ROOT / f"localize-{spec.task}-{dt.datetime.now():%Y%m%d-%H%M%S}"
    run = RunDir(Path(out))
    with run.lock():
        return _localize(spec, task, ids, config, run, device)


def _localize(spec: LocalizeSpec, task, ids, config, run: RunDir, device) -> RunDir:
    if run.run_json.exists() and run.read_run_json().get("config") != config:
        raise UserError(
            f"'{run.root}' already holds a localisation with other settings; use another --out."
        )
    info = {
        "config": config,
        **config,
        "device": str(device),
        "finished": False,
        "versions": package_versions(),
        "git_commit": git_commit(),
        "started": dt.datetime.now().isoformat(timespec="seconds"),
        "task_provenance": task.provenance(["classifier"]),
        "explained_class": "source (the prediction on x)",
    }
    try:
        run.root.mkdir(parents=True, exist_ok=True)
        write_json(run.run_json, info)
    except OSError as err:
        raise UserError(
            f"Cannot write to '{run.root}': {err.strerror}. Pass a writable --out."
        ) from err
    pf, auroc = (METRICS.build(name, task, device) for name in ("PF", "AUROC"))
    for key in spec.attributions:

        def work(chunk, status, key=key):
            status(f"{ATTRIBUTIONS[key][0]} on {len(chunk)} samples")
            samples = task.load(chunk)
            x, source = samples.images.to(device), samples.labels.to(device)
            # LIME's sampling
            torch.manual_seed(seeding.sample_seed(spec.seed, f"{key}:{chunk[0]}"))
            target = task.target_of(source)
            maps = ATTRIBUTIONS[key][1](task, x, source, target).float()
            batch = Batch(x, source, target, chunk)

            def score(metric, masks):  # the metric, with the attribution map as the method's mask
                ctx = SampleContext(task, batch, samples, Counterfactuals(x, masks), None, None)
                return metric.per_sample(ctx)[metric.name].numpy()

            record = {"sample_id": chunk, "method": key, "PF": score(pf, maps)}
            if "causal" in samples.gt_masks:
                record["AUROC"] = score(auroc, maps.abs())
            return pd.DataFrame(record)

        BatchLoop(run, key, ids, spec.batch_size, unit="map").run_all(work)
    per_sample = pd.concat([run.finished_rows(k) for k in spec.attributions], ignore_index=True)
    write_frame(run.samples, per_sample)
    write_frame(run.metrics, summarize(per_sample, spec.task))
    # written atomically: present means complete
    if not (run.figures / "attributions.png").exists():
        _figure(run, task, ids[:FIGURE_SAMPLES], spec.attributions, device)
    info.update(ended=dt.datetime.now().isoformat(timespec="seconds"), finished=True)
    write_json(run.run_json, info)
    return run


def summarize(per_sample: pd.DataFrame, task: str) -> pd.DataFrame:
    """One row per attribution: mean PF and AUROC with 95% bootstrap half-widths."""
    table = []
    for key, rows in per_sample.groupby("method", sort=False):
        record = {"task": task, "method": key, "n": len(rows)}
        for col in ("PF", "AUROC"):
            values = rows[col].to_numpy(float) if col in rows else np.array([np.nan])
            record[col] = float(np.nanmean(values)) if np.isfinite(values).any() else None
            record[f"{col}_ci"] = bootstrap_half_width(values)
        table.append(record)
    return pd.DataFrame(table)


def _figure(run: RunDir, task, ids: list[str], keys: list[str], device) -> None:
    """Rows: the first samples; columns: the image and each attribution's |map|."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    samples = task.load(ids)
    x, source = samples.images.to(device), samples.labels.to(device)
    images = x.cpu()
    maps = {
        k: ATTRIBUTIONS[k][1](task, x, source, task.target_of(source)).float().cpu() for k in keys
    }
    fig, axes = plt.subplots(
        len(images),
        len(keys) + 1,
        figsize=(1.5 * (len(keys) + 1), 1.5 * len(images)),
        squeeze=False,
    )
    for r, img in enumerate(images):
        axes[r, 0].imshow(img.permute(1, 2, 0).numpy())
        for c, key in enumerate(keys, start=1):
            axes[r, c].imshow(maps[key][r, 0].abs().numpy(), cmap="inferno")
            if r == 0:
                axes[r, c].set_title(ATTRIBUTIONS[key][0], fontsize=7)
        for ax in axes[r]:
            ax.axis("off")
    from cfbench.figures import save_figure

    save_figure(fig, run.figures / "attributions.png")


def add_command(sub) -> None:
    from cfbench.cli import task_options

    lo = sub.add_parser(
        "localize", parents=[task_options()], help="score attribution maps (SLCF Table 4)"
    )
    lo.add_argument(
        "--attributions",
        default=",".join(k for k in ATTRIBUTIONS if k != "bblig"),
        help=f"comma-separated: {','.join(ATTRIBUTIONS)} (default: SLCF's Table 4 set, all but "
        "bblig, which needs a diffusion autoencoder and fits GCD's directions)",
    )
    lo.add_argument("--n", type=int, default=64)
    lo.add_argument("--batch-size", type=int, default=32)
    lo.add_argument(
        "--out",
        type=Path,
        default=None,
        help="directory (default results/runs/localize-<task>-<time>)",
    )
    lo.set_defaults(func=_command)


def _command(args) -> int:
    from cfbench.tables import table

    spec = LocalizeSpec(
        task=args.task,
        attributions=parse_attributions(args.attributions),
        n=args.n,
        batch_size=args.batch_size,
        seed=args.seed,
        device=args.device,
        out=args.out,
    )
    run = localize(spec)
    print(table([str(run.root)], "4", "markdown", with_ci=True))
    print(f"Results: {run.root}/ (metrics.csv, samples.parquet, run.json, figures/)")
    print(f"LaTeX: cfbench table {run.root} --table 4 --format latex")
    return 0
