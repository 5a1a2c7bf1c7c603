"""CECAS on a synthetic task through ``cfbench run``: wall time, FR and GT_SPUR per method, against
the issue's bars (cecas FR >= 0.9; n = 32 in at most 20 minutes on the 2-core CPU).

    .venv/bin/python benchmarks/cecas_bars.py [--task synth_cheetah_cougar_shortcut] [--n 32]
        [--methods cecas,cecas_no_ls] [--set cecas.iterations=30 ...] [--out DIR]

Each method runs alone (one ``cfbench run`` each, so each wall time is its own, fits and model
loading included); use it to choose the synthetic preset by measurement.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import pandas as pd

from cfbench.cli import main as cfbench

BAR_FR, BAR_MINUTES = 0.9, 20.0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--task", default="synth_cheetah_cougar_shortcut")
    ap.add_argument("--n", type=int, default=32)
    ap.add_argument("--methods", default="cecas")
    ap.add_argument("--set", action="append", default=[])
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    root = args.out or Path(tempfile.mkdtemp(prefix="cecas-bars-"))
    report = []
    for method in args.methods.split(","):
        sets = [a for s in args.set if s.startswith(method + ".") for a in ("--set", s)]
        t0 = time.perf_counter()
        code = cfbench(["run", "--task", args.task, "--methods", method, "--n", str(args.n), "--device", "cpu",
                        "--metrics", "FR,GT_IN,GT_SPUR,S3,nfe,sec_per_cf", "--out", str(root / method), *sets])
        minutes = (time.perf_counter() - t0) / 60
        row = pd.read_csv(root / method / "metrics.csv").iloc[0]
        report.append({"method": method, "sets": sets[1::2], "minutes": round(minutes, 2), "FR": row["FR"],
                       "GT_IN": row["GT_IN"], "GT_SPUR": row["GT_SPUR"], "S3": row["S3"], "nfe": row["nfe"],
                       "exit": code, "fr_bar_met": bool(row["FR"] >= BAR_FR) if method == "cecas" else None,
                       "time_bar_met": bool(minutes <= BAR_MINUTES)})
        print(json.dumps(report[-1]), flush=True)
    print(pd.DataFrame(report).to_markdown(index=False))
    print(f"runs: {root}")


if __name__ == "__main__":
    main()
