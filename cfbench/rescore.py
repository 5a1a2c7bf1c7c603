"""``cfbench rescore RUN_DIR``: every metric of a finished run, recomputed from its directory alone.

The originals, counterfactuals and masks are read back from the run's PNGs (the exact 8-bit
images the run scored), predictions are recomputed, and every per-sample and set-level metric is
computed again, under the run's protocol or another one (``--protocol``): a check that
``metrics.csv`` follows from what the directory holds, and a way to report a finished run under
another code base's protocol without generating anything again. The result goes to
``metrics-<protocol>.csv`` in the run directory.
"""
from __future__ import annotations

import pandas as pd
import torch

from cfbench import seeding
from cfbench.device import resolve_device
from cfbench.metrics import METRICS
from cfbench.metrics.base import SampleContext
from cfbench.metrics.protocols import protocol as protocol_named
from cfbench.results import RunDir, load_pngs, write_frame
from cfbench.tasks import TASKS
from cfbench.types import Batch, Counterfactuals

BATCH = 32
RECOMPUTED = ("pred_before", "pred_after", "flipped")


def rescore(path: str, protocol: str | None = None, device: str = "auto") -> tuple[pd.DataFrame, pd.DataFrame]:
    """(per-sample rows, metrics table) recomputed from the run directory ``path``."""
    from cfbench.runner import summarize_methods

    run = RunDir.existing(path)
    info = run.read_run_json()
    rules = protocol_named(protocol or info.get("protocol", "cfbench"))
    dev = resolve_device(device)
    task = TASKS.build(info["config"]["task"], device=dev)
    recorded = pd.read_parquet(run.samples)
    metrics = {name: METRICS.build(name, task, dev) for name in info["metrics"]
               if name not in info.get("metrics_unavailable", {})}
    for metric in metrics.values():
        metric.protocol = rules
    frames = []
    for method in dict.fromkeys(recorded["method"]):
        rows = recorded[recorded["method"] == method].reset_index(drop=True)
        has_masks = run.masks(method).is_dir()
        for start in range(0, len(rows), BATCH):
            chunk = rows.iloc[start:start + BATCH].copy()
            ids = list(chunk["sample_id"])
            samples = task.load(ids)
            x = load_pngs(run.images(), ids).to(dev)
            x_cf = load_pngs(run.images(method), ids).to(dev)
            masks = load_pngs(run.masks(method), ids).to(dev) if has_masks else None
            source = torch.tensor(chunk["source"].to_list(), device=dev)
            target = torch.tensor(chunk["target"].to_list(), device=dev)
            batch = Batch(x, source, target, ids, generators=seeding.generators_for(info["seed"], ids))
            with torch.no_grad():
                before, after = task.classifier(x), task.classifier(x_cf)
            ctx = SampleContext(task, batch, samples, Counterfactuals(x_cf, masks, {}), before, after)
            chunk["pred_before"] = before.argmax(1).tolist()
            chunk["pred_after"] = after.argmax(1).tolist()
            chunk["flipped"] = (after.argmax(1) == target).tolist()
            for metric in metrics.values():
                for col, values in metric.per_sample(ctx).items():
                    chunk[col] = values.detach().cpu().tolist()
            frames.append(chunk)
    samples = pd.concat(frames, ignore_index=True)
    table, _ = summarize_methods(run, task.name, list(dict.fromkeys(recorded["method"])), samples, metrics, rules)
    metrics_table = pd.DataFrame(table)
    write_frame(run.root / f"metrics-{rules.name}.csv", metrics_table)
    return samples, metrics_table
