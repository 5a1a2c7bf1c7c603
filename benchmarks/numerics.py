"""Seconds per counterfactual of each method family under each numerics setting, side by side.

For each method on one task (default: one per family on synth_cheetah_cougar, n = 32), four runs
through ``cfbench run``: float32 eager, bfloat16 eager, float32 compiled, bfloat16 compiled (the
generative networks only; ``cfbench/numerics.py``). Printed per method and setting: seconds per
counterfactual (generation, without the fit and without compiling), the speed-up over float32
eager, FR, GT_IN and COUT with their 95% intervals, whether FR and GT_IN stay inside float32's
intervals, and the share of samples whose flip outcome equals float32's.

    .venv/bin/python benchmarks/numerics.py [--task T] [--methods slcf,rcsb_a,gcd,cecas] [--n 32]
        [--out DIR] [--json FILE]

Run it on an idle machine: every timing is measured in this one run.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import pandas as pd

from cfbench.runner import Runner, RunSpec

SETTINGS = {
    "float32 eager": ("float32", None),
    "bfloat16 eager": ("bfloat16", None),
    "float32 compiled": ("float32", "inductor"),
    "bfloat16 compiled": ("bfloat16", "inductor"),
}


def measure(task: str, method: str, n: int, out: Path) -> list[dict]:
    rows, reference = [], None
    for name, (dtype, backend) in SETTINGS.items():
        folder = out / method / name.replace(" ", "-")
        spec = RunSpec(
            task=task,
            methods=[method],
            n=n,
            batch_size=n,
            out=folder,
            metrics="FR,GT_IN,COUT,sec_per_cf",
            dtype=dtype,
            compile=backend,
        )
        run = Runner(spec).execute()
        metrics = run.read_metrics().iloc[0]
        samples = pd.read_parquet(run.samples).sort_values("sample_id")
        info = run.read_run_json()
        compile_seconds = sum(
            v.get("compile_seconds", 0.0) for v in info.get("numerics", {}).values()
        )
        seconds = (samples["seconds"].sum() - compile_seconds) / len(samples)
        row = {
            "method": method,
            "setting": name,
            "sec_per_cf": round(seconds, 3),
            "compile_seconds": round(compile_seconds, 1),
            **{k: metrics[k] for k in ("FR", "FR_ci", "GT_IN", "GT_IN_ci", "COUT", "COUT_ci")},
            "fallback": any(v.get("compile_fallback") for v in info.get("numerics", {}).values()),
        }
        if reference is None:
            reference = (row, samples)
            row["agreement"] = 1.0
        else:
            base, base_samples = reference
            row["agreement"] = float(
                (samples["flipped"].to_numpy() == base_samples["flipped"].to_numpy()).mean()
            )
            for k in ("FR", "GT_IN"):
                row[f"{k}_within"] = abs(row[k] - base[k]) <= base[f"{k}_ci"]
        row["speedup"] = round(reference[0]["sec_per_cf"] / row["sec_per_cf"], 2)
        rows.append(row)
        print(json.dumps(row, default=str), flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", default="synth_cheetah_cougar")
    ap.add_argument("--methods", default="slcf,rcsb_a,gcd,cecas")
    ap.add_argument("--n", type=int, default=32)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="numerics-"))
    rows = [r for m in args.methods.split(",") for r in measure(args.task, m, args.n, out)]
    table = pd.DataFrame(rows)
    print(table.to_markdown(index=False, floatfmt=".3f"))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2, default=str))


if __name__ == "__main__":
    main()
