"""GCD on the synthetic tasks: the issue's bars, measured.

For each synthetic task, ``cfbench run --methods gcd,gcd_random --n N`` (the g-direction and a
random unit direction searched the same way) in a fresh directory; prints FR, COUT, S3, GT_IN,
the median chosen alpha / alpha_max, FR without the source images the directions were fitted
from, and seconds per method (generation plus its fits) and of the whole run. Run on an idle machine:

    .venv/bin/python benchmarks/gcd_bars.py --n 32 --out /tmp/gcd-bars
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

TASKS = ("synth_cheetah_cougar", "synth_zebra_sorrel", "synth_egyptian_persian")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=32)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--methods", default="gcd,gcd_random")
    ap.add_argument("--set", action="append", default=[])
    args = ap.parse_args()
    cfbench = Path(sys.executable).parent / "cfbench"
    rows = []
    for task in TASKS:
        out = args.out / task
        t0 = time.perf_counter()
        cmd = [str(cfbench), "run", "--task", task, "--methods", args.methods, "--n", str(args.n), "--out", str(out),
               "--metrics", "FR,COUT,S3,GT_IN,nfe,sec_per_cf", *sum((["--set", s] for s in args.set), [])]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        seconds = time.perf_counter() - t0
        metrics = pd.read_csv(out / "metrics.csv")
        samples = pd.read_parquet(out / "samples.parquet")
        info = json.loads((out / "run.json").read_text())
        for _, m in metrics.iterrows():
            mine = samples[samples["method"] == m["method"]]
            fit = info["method_provenance"][m["method"]].get("fit", {})
            sources = {d["source_id"] for d in fit.get("directions", {}).values() if "source_id" in d}
            rows.append({"task": task, "method": m["method"], "FR": m["FR"], "COUT": m["COUT"], "S3": m["S3"],
                         "GT_IN": m["GT_IN"], "median_alpha_frac": float(mine["alpha_fraction"].median()),
                         "FR_without_sources": float(mine[~mine["sample_id"].isin(sources)]["flipped"].mean()),
                         "nfe": m["nfe"],
                         "method_seconds": round(float(mine["seconds"].sum()) + sum(
                             d.get("seconds", 0.0) for d in fit.get("directions", {}).values()), 1),
                         "run_seconds": round(seconds, 1)})
    table = pd.DataFrame(rows)
    print(table.to_markdown(index=False, floatfmt=".3f"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
