"""``cfbench rescore RUN_DIR``: every metric of a finished run, recomputed from its directory alone.

The originals, counterfactuals and masks are read back from the run's PNGs (the exact 8-bit
images the run scored), predictions are recomputed, and every per-sample and set-level metric is
computed again, under the run's protocol or another one (``--protocol``): a check that
``metrics.csv`` follows from what the directory holds, and a way to report a finished run under
another code base's protocol, or with metrics registered after it ran (``metrics``), without
generating anything again. The result goes to ``metrics-<protocol>.csv`` in the run directory.
"""

from __future__ import annotations

import pandas as pd
import torch

from cfbench import damage, seeding
from cfbench.api.types import Batch, Counterfactuals
from cfbench.catalog import PROTOCOLS, TASKS
from cfbench.device import resolve_device
from cfbench.errors import UserError
from cfbench.results import RunDir, load_pngs, write_frame
from cfbench.scoring import score_batch
from cfbench.summary import build_metrics, metric_names, summarize_methods

BATCH = 32


def rescore(
    path: str, protocol: str | None = None, device: str = "auto", metrics: str | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(per-sample rows, metrics table) recomputed from the run directory ``path``; ``metrics``
    (a list or "all", default the run's own) may name metrics the run did not score."""
    run = RunDir.existing(path)
    info = run.read_run_record()
    methods = list(info["config"].get("methods", {}))
    if not run.samples.exists():
        raise UserError(
            f"Run '{run.root}' has no samples.parquet: it did not finish. Start the same "
            "`cfbench run` command again to resume and finish it, then rescore."
        )
    damage.refuse_if_damaged(run, methods)
    rules = PROTOCOLS.get(protocol or info.get("protocol", "cfbench")).load()
    dev = resolve_device(device)
    task = TASKS.build(info["config"]["task"], device=dev)
    recorded = pd.read_parquet(run.samples)
    if metrics is None:
        names = [n for n in info["metrics"] if n not in info.get("metrics_unavailable", {})]
    else:
        names = metric_names(metrics)
    built = build_metrics(names, task, dev, rules)
    metrics = {n: m for n, m in built.items() if metrics is None or not m.unavailable()}
    frames = []
    for method in dict.fromkeys(recorded["method"]):
        rows = recorded[recorded["method"] == method].reset_index(drop=True)
        has_masks = run.masks(method).is_dir()
        for start in range(0, len(rows), BATCH):
            chunk = rows.iloc[start : start + BATCH].copy()
            ids = list(chunk["sample_id"])
            samples = task.load(ids)
            x = load_pngs(run.images(), ids).to(dev)
            x_cf = load_pngs(run.images(method), ids).to(dev)
            masks = load_pngs(run.masks(method), ids).to(dev) if has_masks else None
            source = torch.tensor(chunk["source"].to_list(), device=dev)
            target = torch.tensor(chunk["target"].to_list(), device=dev)
            batch = Batch(
                x, source, target, ids, generators=seeding.generators_for(info["seed"], ids)
            )
            predictions, scores = score_batch(
                task, metrics, batch, samples, Counterfactuals(x_cf, masks, {})
            )
            for column, values in {**predictions, **scores}.items():
                chunk[column] = values
            frames.append(chunk)
    samples = pd.concat(frames, ignore_index=True)
    table, _ = summarize_methods(
        run, task.name, list(dict.fromkeys(recorded["method"])), samples, metrics, rules
    )
    metrics_table = pd.DataFrame(table)
    write_frame(run.root / f"metrics-{rules.name}.csv", metrics_table)
    return samples, metrics_table
