"""A torchrun job with an odd n equals one process in every column of metrics.csv but time.

Both runs use batch 1 and one thread per process, so each counterfactual is made by the same
kernels whichever rank makes it; what is compared is then the metric suite's independence of how
samples were split (rank 1 gets one sample fewer) and batched. Prints the columns that differ
(none is the bar) and the largest difference per column:

    .venv/bin/python benchmarks/torchrun_equal.py --task synth_cheetah_cougar \
        --methods slcf,rcsb_a --n 7
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

TIME_COLUMNS = ("sec_per_cf", "sec_per_cf_ci", "seconds", "fit_seconds")


def run(cmd: list[str]) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"{' '.join(cmd)} failed:\n{done.stderr[-3000:]}")


def differing(a: pd.DataFrame, b: pd.DataFrame) -> dict[str, float | str]:
    """Column -> largest absolute difference (or 'text' for non-numeric columns that differ)."""
    out: dict[str, float | str] = {}
    for col in a.columns:
        x, y = a[col], b[col]
        if isinstance(x.iloc[0], (np.ndarray, list)):  # per-sample curves
            gaps = (np.abs(np.subtract(u, v, dtype=float)).max() for u, v in zip(x, y))
            gap = max(gaps, default=0.0)
            if gap > 0:
                out[col] = float(gap)
        elif not x.equals(y):
            out[col] = float((x - y).abs().max()) if pd.api.types.is_numeric_dtype(x) else "text"
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--task", default="synth_cheetah_cougar")
    ap.add_argument("--methods", default="slcf,rcsb_a")
    ap.add_argument("--n", type=int, default=7, help="odd, so the ranks get unequal shares")
    ap.add_argument("--metrics", default="all")
    ap.add_argument("--keep", help="keep both run directories under this folder")
    args = ap.parse_args()
    bin_dir = Path(sys.executable).parent
    common = ["run", "--task", args.task, "--methods", args.methods, "--n", str(args.n)]
    common += ["--batch-size", "1", "--metrics", args.metrics, "--device", "cpu"]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.keep or tmp)
        one, two = root / "one_process", root / "torchrun_2"
        run([str(bin_dir / "cfbench"), *common, "--out", str(one)])
        torchrun = [str(bin_dir / "torchrun"), "--standalone", "--nproc_per_node=2"]
        run([*torchrun, "-m", "cfbench", "--", *common, "--out", str(two)])
        ma, mb = (
            pd.read_csv(d / "metrics.csv").drop(columns=list(TIME_COLUMNS), errors="ignore")
            for d in (one, two)
        )
        sa, sb = (
            pd.read_parquet(d / "samples.parquet")
            .drop(columns=list(TIME_COLUMNS), errors="ignore")
            .sort_values(["method", "sample_id"], ignore_index=True)
            for d in (one, two)
        )
    diff_m, diff_s = differing(ma, mb), differing(sa, sb)
    print(f"{args.task} {args.methods} n={args.n}, metrics {args.metrics}, batch 1:")
    for name, frame, diff in (("metrics.csv", ma, diff_m), ("samples.parquet", sa, diff_s)):
        print(f"  {name}: {len(frame.columns)} columns compared, {len(diff)} differ {diff or ''}")
    return 1 if diff_m or diff_s else 0


if __name__ == "__main__":
    sys.exit(main())
