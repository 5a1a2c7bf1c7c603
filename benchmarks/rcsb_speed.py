"""RCSB seconds and classifier evaluations per counterfactual, per preset (issue 5 speed report).

    .venv/bin/python benchmarks/rcsb_speed.py [--task synth_cheetah_cougar] [--n 16] [--presets
    rcsb_a,rcsb_b,rcsb_c]

Each preset runs once on the same ``n`` samples as one batch, with its registered settings. The
classifier evaluations are the method's own count (IG path points + prediction + one per guided
denoising step); denoiser evaluations are one per denoising step.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from cfbench.catalog import METHODS, TASKS


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--task", default="synth_cheetah_cougar")
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--presets", default="rcsb_a,rcsb_b,rcsb_c")
    args = ap.parse_args()
    device = torch.device("cpu")
    task = TASKS.build(args.task, device=device)
    ids = task.sample_ids(args.n)
    report = {"task": args.task, "n": args.n, "threads": torch.get_num_threads(), "presets": {}}
    for name in args.presets.split(","):
        method = METHODS.build(name, task, device)
        batch = task.batch(ids)  # fresh generators for each preset
        t0 = time.perf_counter()
        cf = method.generate(batch)
        seconds = (time.perf_counter() - t0) / len(ids)
        with torch.no_grad():
            flipped = (task.classifier(cf.images).argmax(1) == batch.target).float().mean()
        report["presets"][name] = {
            "sec_per_cf": round(seconds, 3),
            "classifier_evals_per_cf": float(cf.info["nfe"].float().mean()),
            "denoiser_evals_per_cf": int(cf.info["steps"][0]),
            "flip_rate": float(flipped),
        }
        print(name, report["presets"][name], flush=True)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
