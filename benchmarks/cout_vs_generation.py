"""COUT time vs SLCF generation time on the same samples (issue 4 bar: COUT costs at most as much).

    .venv/bin/python benchmarks/cout_vs_generation.py [--task synth_egyptian_persian] [--n 32]
    [--batch-size 16] .venv/bin/python benchmarks/cout_vs_generation.py --run RUN_DIR [--method
    slcf]

Default: SLCF (defaults) generates counterfactuals batch by batch and COUT is computed on exactly
those (8-bit quantised) counterfactuals, interleaved in one process, so both see the same machine
load. ``--run``: COUT is recomputed from a finished run's PNGs with the run's batch size and
compared with the generation time the run recorded (cheaper; fair only on an otherwise idle
machine). Reports seconds per counterfactual of both, their ratio, and classifier evaluations per
counterfactual (COUT: one per insertion step)."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import pandas as pd
import torch

from cfbench.api.metric import SampleContext
from cfbench.api.types import Batch, Counterfactuals
from cfbench.catalog import METHODS, METRICS, TASKS
from cfbench.results import RunDir, load_pngs, quantize


def _task(name: str):
    return TASKS.build(name, device=torch.device("cpu"))


def cout(task, x, x_cf, source, target) -> tuple[torch.Tensor, int]:
    """COUT per sample as the registered metric computes it, and its classifier calls per CF."""
    metric = METRICS.build("COUT", task, torch.device("cpu"))
    batch = Batch(x, source, target, [str(i) for i in range(len(x))])
    found = metric.per_sample(SampleContext(task, batch, None, Counterfactuals(x_cf), None, None))
    return found["COUT"], found["COUT_curve_target"].shape[1]


def interleaved(task_name: str, n: int, batch_size: int) -> tuple[dict, object]:
    task = _task(task_name)
    method = METHODS.build("slcf", task, torch.device("cpu"))
    ids = task.sample_ids(n)
    gen_seconds = cout_seconds = 0.0
    couts, nfe = [], []
    for start in range(0, n, batch_size):
        chunk = ids[start : start + batch_size]
        batch = task.batch(chunk)
        t0 = time.perf_counter()
        cf = method.generate(batch)
        gen_seconds += time.perf_counter() - t0
        nfe.append(cf.info["nfe"].float())
        t0 = time.perf_counter()
        value, calls = cout(task, batch.images, quantize(cf.images), batch.source, batch.target)
        couts.append(value)
        cout_seconds += time.perf_counter() - t0
    return {
        "task": task_name,
        "n": n,
        "batch_size": batch_size,
        "slcf_sec_per_cf": gen_seconds / n,
        "cout_sec_per_cf": cout_seconds / n,
        "slcf_classifier_evals_per_cf": float(torch.cat(nfe).mean()),
        "mean_cout": float(torch.cat(couts).mean()),
        "cout_classifier_evals_per_cf": calls,
    }, task


def from_run(path: Path, method: str) -> tuple[dict, object]:
    run = RunDir.existing(path)
    info = run.read_run_json()
    rows = pd.read_parquet(run.samples)
    rows = rows[rows["method"] == method]
    task, ids, batch_size = _task(info["task"]), list(rows["sample_id"]), info["batch_size"]
    cout_seconds, couts = 0.0, []
    for start in range(0, len(ids), batch_size):
        chunk = ids[start : start + batch_size]
        part = rows.iloc[start : start + batch_size]
        x, x_cf = load_pngs(run.images(), chunk), load_pngs(run.images(method), chunk)
        source, target = (
            torch.tensor(part["source"].to_numpy()),
            torch.tensor(part["target"].to_numpy()),
        )
        t0 = time.perf_counter()
        value, calls = cout(task, x, x_cf, source, target)
        couts.append(value)
        cout_seconds += time.perf_counter() - t0
    return {
        "task": info["task"],
        "n": len(ids),
        "batch_size": batch_size,
        "run": str(path),
        "slcf_sec_per_cf": float(rows["seconds"].mean()),
        "cout_sec_per_cf": cout_seconds / len(ids),
        "slcf_classifier_evals_per_cf": float(rows["nfe"].mean()),
        "mean_cout": float(torch.cat(couts).mean()),
        "cout_classifier_evals_per_cf": calls,
    }, task


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--task", default="synth_egyptian_persian")
    ap.add_argument("--n", type=int, default=32)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--run", type=Path, default=None)
    ap.add_argument("--method", default="slcf")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    report, task = (
        from_run(args.run, args.method)
        if args.run
        else interleaved(args.task, args.n, args.batch_size)
    )
    report.update(
        threads=args.threads,
        cout_over_generation=report["cout_sec_per_cf"] / report["slcf_sec_per_cf"],
    )
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
