"""Throughput (counterfactuals per second) of one run as 1 and as 2 torchrun processes.

Same samples, method and settings; each run in a fresh directory; wall time of the whole command
(start-up, generation, summary). On a 2-core CPU the gain is bounded (one thread per process vs
two threads in one); on GPUs each rank has its own device and that is the point:

    .venv/bin/python benchmarks/scaling_throughput.py --task synth_cheetah_cougar --methods slcf
    --n 32
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def timed(cmd: list[str], env: dict) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--task", default="synth_cheetah_cougar")
    ap.add_argument("--methods", default="slcf")
    ap.add_argument("--n", type=int, default=32)
    ap.add_argument("--batch-size", default="8")
    args = ap.parse_args()
    bin_dir = Path(sys.executable).parent
    run = [
        "run",
        "--task",
        args.task,
        "--methods",
        args.methods,
        "--n",
        str(args.n),
        "--batch-size",
        args.batch_size,
        "--metrics",
        "FR,COUT,GT_IN",
    ]
    n_cf = args.n * len(args.methods.split(","))
    with tempfile.TemporaryDirectory() as tmp:
        one = timed([str(bin_dir / "cfbench"), *run, "--out", f"{tmp}/one"], dict(os.environ))
        two = timed(
            [
                str(bin_dir / "torchrun"),
                "--standalone",
                "--nproc_per_node=2",
                "-m",
                "cfbench",
                "--",
                *run,
                "--out",
                f"{tmp}/two",
            ],
            {**os.environ, "OMP_NUM_THREADS": "1"},
        )
    print(
        f"{args.task} {args.methods} n={args.n}: 1 process {n_cf / one:.2f} CF/s ({one:.1f} s); "
        f"2 processes {n_cf / two:.2f} CF/s ({two:.1f} s); speed-up {one / two:.2f}x"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
