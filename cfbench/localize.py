"""``cfbench localize``: SLCF's Table 4, how faithful attribution maps are, and where they point.

Every attribution explains the classifier's source-class logit on the original image and is
reduced to one (B,1,H,W) map (channel sum where a method attributes per channel):

  lime  LIME (captum, 8x8-pixel superpixels, black baseline)   ixg  Input x Gradient (captum)
  gc    Grad-CAM (grad-cam)                                    lc   LayerCAM (grad-cam)
  sc    Score-CAM (grad-cam)                                   gig  Guided IG (saliency)
  gbp   Guided Backprop                                        ig   Integrated Gradients (captum)
  lag   SLCF's latent aggregated gradients (stage 1 toward the target), Gaussian-filtered and
        normalised as SLCF's mask but not thresholded: the thresholded mask ties everything
        below the threshold at 0, this map orders those pixels too and agrees above it.

Guided Backprop is cfbench's own: captum's and grad-cam's versions hook ``nn.ReLU`` modules and
silently fall back to plain gradients for functional ReLUs, which the synthetic classifier uses.

Scores: PF, Quantus pixel flipping of the signed map (``metrics/pixel_flipping.py``, lower is
better) and, on tasks with ground truth, AUROC of |map| against the causal mask (higher is
better), which no real benchmark can report. Writes ``localize.csv`` (one row per attribution,
with bootstrap half-widths), ``localize_samples.parquet``, ``run.json`` and a figure of the maps.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import numpy as np
import pandas as pd
import torch
from scipy.stats import rankdata
from torch.nn import functional as F
from tqdm.auto import tqdm

from cfbench import seeding
from cfbench.device import resolve_device
from cfbench.errors import UserError
from cfbench.metrics.pixel_flipping import pixel_flipping
from cfbench.metrics.stats import bootstrap_half_width
from cfbench.results import RunDir, write_frame, write_json
from cfbench.tasks import TASKS
from cfbench.types import Batch

DEFAULT_ROOT = Path("results/runs")   # as `cfbench run`; directories are named localize-<task>-<time>
CSV = "localize.csv"
LIME_CELL, LIME_SAMPLES = 8, 256
GIG_STEPS = 64
FIGURE_SAMPLES = 4


def _channel_sum(a: torch.Tensor) -> torch.Tensor:
    return a.detach().sum(1, keepdim=True)


def lime(task, x, source, target):
    from captum.attr import Lime

    b, c, h, w = x.shape
    cells = torch.arange((h // LIME_CELL) * (w // LIME_CELL)).view(1, 1, h // LIME_CELL, w // LIME_CELL)
    mask = F.interpolate(cells.float(), size=(h, w), mode="nearest").long().expand(b, c, h, w).to(x.device)
    return _channel_sum(Lime(task.classifier).attribute(x, target=source, feature_mask=mask, baselines=0.0,
                                                        n_samples=LIME_SAMPLES,
                                                        perturbations_per_eval=LIME_SAMPLES))


def input_x_gradient(task, x, source, target):
    from captum.attr import InputXGradient

    return _channel_sum(InputXGradient(task.classifier).attribute(x.clone(), target=source))


def integrated_gradients(task, x, source, target):
    from cfbench.methods.attribution import pixel_integrated_gradients

    return _channel_sum(pixel_integrated_gradients(task.classifier, x, source))


def cam_layer(model: torch.nn.Module, x: torch.Tensor) -> torch.nn.Module:
    """The last module (in execution order) that outputs a spatial feature map: the CAM layer."""
    seen: list[torch.nn.Module] = []
    hooks = [m.register_forward_hook(lambda m, i, o: seen.append(m) if torch.is_tensor(o) and o.dim() == 4
                                     and o.shape[-1] > 1 else None) for m in model.modules()]
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
        maps = [saliency.GuidedIG().GetMask(img.permute(1, 2, 0).cpu().numpy(), call_model, int(s),
                                            x_baseline=np.zeros(img.permute(1, 2, 0).shape, np.float32),
                                            x_steps=GIG_STEPS, max_dist=1.0, fraction=0.5)
                for img, s in zip(x, source)]
    return torch.from_numpy(np.stack(maps)).permute(0, 3, 1, 2).sum(1, keepdim=True).to(x)


class _GuidedReLU(torch.autograd.Function):
    """ReLU whose backward passes only positive gradients at positive inputs (Springenberg et al.)."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x.clamp_min(0)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * (x > 0) * (grad > 0)


def guided_backprop(task, x, source, target):
    inputs = x.clone().requires_grad_(True)
    relu = mock.patch.object(F, "relu", lambda t, inplace=False: _GuidedReLU.apply(t))
    with relu, torch.enable_grad():
        logits = task.classifier(inputs)
        (grad,) = torch.autograd.grad(logits.gather(1, source[:, None]).sum(), inputs)
    return _channel_sum(grad)


def latent_aggregated_gradients(task, x, source, target):
    from cfbench.methods.masks import postprocess_mask, upsample
    from cfbench.methods.slcf import SLCF

    method = SLCF(task, x.device)
    space = method.edit_space(x)
    ones = torch.ones_like(space.code[:, :1])
    stage1 = method.optimise(space, method.class_goal(target, None, None), ones, torch.zeros_like(space.code),
                             method.hparams["stage1_steps"], patience=1, noise=0.0, generators=None)
    batch = Batch(x, source, target, [str(i) for i in range(len(x))])
    lag = method.attribution(space, batch, stage1)
    return upsample(postprocess_mask(lag, method.hparams["sigma"], 0.0), x.shape[-1])


ATTRIBUTIONS = {  # key -> (Table 4 row label, function(task, x, source, target) -> (B,1,H,W))
    "lime": ("LIME", lime), "ixg": ("Input×Gradient", input_x_gradient),
    "gc": ("Grad-CAM", _cam("GradCAM")), "lc": ("LayerCAM", _cam("LayerCAM")), "sc": ("Score-CAM", _cam("ScoreCAM")),
    "gig": ("Guided IG", guided_ig), "gbp": ("Guided Backprop", guided_backprop),
    "ig": ("IG", integrated_gradients), "lag": ("LAG", latent_aggregated_gradients),
}


def parse_attributions(spec: str) -> list[str]:
    keys = [k.strip() for k in spec.split(",") if k.strip()]
    unknown = [k for k in keys if k not in ATTRIBUTIONS]
    if unknown or not keys:
        raise UserError(f"Unknown attribution method(s) {', '.join(unknown) or '(none given)'}. Choose from: "
                        + ", ".join(f"{k} ({v[0]})" for k, v in ATTRIBUTIONS.items()) + ".")
    return keys


def auroc(scores: torch.Tensor, truth: torch.Tensor) -> np.ndarray:
    """(B,) area under the ROC curve of per-pixel scores against a binary mask (ties count half)."""
    out = []
    for s, t in zip(scores.flatten(1).cpu().numpy(), truth.flatten(1).cpu().numpy().astype(bool)):
        pos, neg = t.sum(), (~t).sum()
        if pos == 0 or neg == 0:
            out.append(np.nan)
            continue
        ranks = rankdata(s)
        out.append((ranks[t].sum() - pos * (pos + 1) / 2) / (pos * neg))
    return np.array(out)


@dataclass
class LocalizeSpec:
    task: str
    attributions: list[str]
    n: int = 64
    batch_size: int = 32
    seed: int = 0
    device: str = "auto"
    out: Path | None = None


def localize(spec: LocalizeSpec) -> RunDir:
    entry = TASKS.get(spec.task)
    if spec.n < 1 or spec.batch_size < 1:
        raise UserError(f"--n and --batch-size must be positive (got {spec.n} and {spec.batch_size}).")
    device = resolve_device(spec.device)
    task = entry.load()(device=device, **entry.preset)
    ids = task.sample_ids(spec.n)
    out = spec.out or DEFAULT_ROOT / f"localize-{spec.task}-{dt.datetime.now():%Y%m%d-%H%M%S}"
    run = RunDir(Path(out))
    info = {"kind": "localize", "task": spec.task, "n": len(ids), "seed": spec.seed, "device": str(device),
            "attributions": spec.attributions, "started": dt.datetime.now().isoformat(timespec="seconds"),
            "task_provenance": task.provenance(), "explained_class": "source (the prediction on x)"}
    try:
        run.root.mkdir(parents=True, exist_ok=True)
        write_json(run.run_json, info)
    except OSError as err:
        raise UserError(f"Cannot write to '{run.root}': {err.strerror}. Pass a writable --out.") from err
    rows, examples = [], {}
    bar = tqdm(total=len(ids) * len(spec.attributions), desc="localize", unit="map")
    for start in range(0, len(ids), spec.batch_size):
        chunk = ids[start:start + spec.batch_size]
        samples = task.load(chunk)
        x, source = samples.images.to(device), samples.labels.to(device)
        target = task.target_of(source)
        for key in spec.attributions:
            torch.manual_seed(seeding.sample_seed(spec.seed, f"{key}:{chunk[0]}"))   # LIME's sampling
            maps = ATTRIBUTIONS[key][1](task, x, source, target).float()
            record = {"sample_id": chunk, "attribution": key,
                      "PF": pixel_flipping(task.classifier, x, source, maps)}
            if "causal" in samples.gt_masks:
                record["AUROC"] = auroc(maps.abs(), samples.gt_masks["causal"] > 0.5)
            rows.append(pd.DataFrame(record))
            examples.setdefault(key, (x[:FIGURE_SAMPLES].cpu(), maps[:FIGURE_SAMPLES].cpu()))
            bar.update(len(chunk))
    bar.close()
    per_sample = pd.concat(rows, ignore_index=True)
    write_frame(run.root / "localize_samples.parquet", per_sample)
    write_frame(run.root / CSV, summarize(per_sample, spec.task))
    _figure(run, examples)
    info.update(ended=dt.datetime.now().isoformat(timespec="seconds"), finished=True)
    write_json(run.run_json, info)
    return run


def summarize(per_sample: pd.DataFrame, task: str) -> pd.DataFrame:
    """One row per attribution: mean PF and AUROC with 95% bootstrap half-widths."""
    table = []
    for key, rows in per_sample.groupby("attribution", sort=False):
        record = {"task": task, "Attribution": ATTRIBUTIONS[key][0], "key": key, "n": len(rows)}
        for col in ("PF", "AUROC"):
            values = rows[col].to_numpy(float) if col in rows else np.array([np.nan])
            record[col] = float(np.nanmean(values)) if np.isfinite(values).any() else None
            record[f"{col}_ci"] = bootstrap_half_width(values)
        table.append(record)
    return pd.DataFrame(table)


def read_localization(run: RunDir) -> pd.DataFrame:
    path = run.root / CSV
    if not path.exists():
        raise UserError(f"'{run.root}' has no {CSV}: Table 4 is made from `cfbench localize` output "
                        "directories; the other tables from `cfbench run` directories.")
    return pd.read_csv(path)


def _figure(run: RunDir, examples: dict[str, tuple[torch.Tensor, torch.Tensor]]) -> None:
    """Rows: the first samples; columns: the image and each attribution's |map|."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = list(examples)
    images = examples[keys[0]][0]
    maps = {k: m for k, (_, m) in examples.items()}
    fig, axes = plt.subplots(len(images), len(keys) + 1, figsize=(1.5 * (len(keys) + 1), 1.5 * len(images)),
                             squeeze=False)
    for r, img in enumerate(images):
        axes[r, 0].imshow(img.permute(1, 2, 0).numpy())
        for c, key in enumerate(keys, start=1):
            axes[r, c].imshow(maps[key][r, 0].abs().numpy(), cmap="inferno")
            if r == 0:
                axes[r, c].set_title(ATTRIBUTIONS[key][0], fontsize=7)
        for ax in axes[r]:
            ax.axis("off")
    run.figures.mkdir(parents=True, exist_ok=True)
    fig.savefig(run.figures / "attributions.png", dpi=110, bbox_inches="tight")
    plt.close(fig)
