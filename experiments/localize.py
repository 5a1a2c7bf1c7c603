"""``cfbench localize``: SLCF's Table 4, how faithful attribution maps are, and where they point.

Every registered attribution (``cfbench list attributions``; ``methods/attributions.py``)
explains the classifier's source-class logit on the original image as one (B,1,H,W) map.

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

import numpy as np
import pandas as pd
import torch

from cfbench import seeding
from cfbench.api.metric import SampleContext
from cfbench.api.types import Batch, Counterfactuals
from cfbench.batches import BatchLoop
from cfbench.catalog import ATTRIBUTIONS, METRICS, TASKS
from cfbench.device import resolve_device
from cfbench.errors import UserError
from cfbench.guard import DEFAULT_ROOT
from cfbench.provenance import git_commit, package_versions
from cfbench.results import RunDir, write_frame, write_json
from cfbench.stats import bootstrap_half_width
from cfbench.tables import Layout, labelled_rows

FIGURE_SAMPLES = 4


def parse_attributions(spec: str) -> list[str]:
    return ATTRIBUTIONS.parse_list(spec)


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
    lambda metrics: labelled_rows(
        {e.name: (e.load().label,) for e in ATTRIBUTIONS.entries()},
        ("Attribution",),
        "Table 4 (localization, `cfbench localize` directories)",
    )(metrics),
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
        attribution = ATTRIBUTIONS.build(key, task, device)

        def work(chunk, status, key=key, attribution=attribution):
            status(f"{attribution.label} on {len(chunk)} samples")
            samples = task.load(chunk)
            x, source = samples.images.to(device), samples.labels.to(device)
            # LIME's sampling
            torch.manual_seed(seeding.sample_seed(spec.seed, f"{key}:{chunk[0]}"))
            target = task.target_of(source)
            maps = attribution.explain(x, source, target).float()
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
    built = {k: ATTRIBUTIONS.build(k, task, device) for k in keys}
    maps = {k: a.explain(x, source, task.target_of(source)).float().cpu() for k, a in built.items()}
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
                axes[r, c].set_title(built[key].label, fontsize=7)
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
        default=",".join(k for k in ATTRIBUTIONS.names() if k != "bblig"),
        help=f"comma-separated: {','.join(ATTRIBUTIONS.names())} (default: SLCF's Table 4 set, "
        "all but bblig, which needs a diffusion autoencoder and fits GCD's directions)",
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
