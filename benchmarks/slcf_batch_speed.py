"""SLCF seconds per counterfactual at batch 1 vs batch 32 on the same samples (issue 2 bar: >=
2.5x).

    .venv/bin/python benchmarks/slcf_batch_speed.py [--task synth_cheetah_cougar] [--n 32]

Batch 1 runs the samples one at a time; batch 32 runs them together. Both use the method's
defaults and the same per-sample seeds, so they produce the same counterfactuals.
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
    ap.add_argument("--method", default="slcf")
    ap.add_argument("--n", type=int, default=32)
    args = ap.parse_args()
    device = torch.device("cpu")
    task = TASKS.build(args.task, device=device)
    method = METHODS.build(args.method, task, device)
    ids = task.sample_ids(args.n)

    def run(chunk: int) -> tuple[float, torch.Tensor]:
        batches = [task.batch(ids[s : s + chunk]) for s in range(0, len(ids), chunk)]
        outs, t0 = [], time.perf_counter()
        for b in batches:
            outs.append(method.generate(b).images)
        return (time.perf_counter() - t0) / len(ids), torch.cat(outs)

    run(args.n)  # warm-up (allocator, oneDNN kernels)
    t1, x1 = run(1)
    tb, xb = run(args.n)
    print(
        json.dumps(
            {
                "task": args.task,
                "method": args.method,
                "n": args.n,
                "threads": torch.get_num_threads(),
                "sec_per_cf_batch1": round(t1, 4),
                f"sec_per_cf_batch{args.n}": round(tb, 4),
                "speedup": round(t1 / tb, 2),
                "max_abs_diff": float((x1 - xb).abs().max()),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
