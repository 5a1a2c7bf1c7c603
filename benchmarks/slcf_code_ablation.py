"""Where SLCF's published COUT comes from: the paper-text `slcf` with each difference of the
released code (`slcf_code`, cfg_2) switched on alone, and the full `slcf_code`, on one synthetic task.

Values of a switch are the released code's, converted to cfbench's latent units exactly as
`slcf_code` converts them (``SLCF.effective_units``). Every run is an ordinary `cfbench run` in
its own directory under --runs; the table (Markdown and CSV) goes to --out:

    .venv/bin/python benchmarks/slcf_code_ablation.py --task synth_cheetah_cougar --n 32 \\
        --protocol ace --out results/paper/slcf_code_ablation
"""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pandas as pd
import torch


def switches(task: str) -> dict[str, dict]:
    from cfbench.methods import METHODS
    from cfbench.tasks import TASKS

    code = METHODS.build("slcf_code", TASKS.build(task), torch.device("cpu"))
    lr, noise, lambda_s, sigma = code.effective_units()
    return {
        "paper text (slcf)": {},
        "+ stop rule (p > 0.95, 5 steps, both stages)": {"stop_rule": "code", "confidence": 0.95, "patience": 5},
        f"+ lr {lr:.3g}": {"lr": lr},
        f"+ sparsity weight {lambda_s:.3g}": {"lambda_s": lambda_s},
        f"+ perturbation std {noise:.3g}": {"noise": noise},
        "+ positive LAG": {"lag_sign": "positive"},
        "+ logit loss": {"class_loss": "logit"},
        "+ stage 2 restarts from 0": {"stage2_start": "zero"},
        "+ stage-1 round trip": {"roundtrip": True},
        f"+ sigma {sigma:.3g} (64-grid sigma 3)": {"sigma": sigma},
        "+ D(z + M dz), unperturbed": {"residual": False, "return_noiseless": True},
        "released code (slcf_code)": None,
    }


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--task", default="synth_cheetah_cougar")
    ap.add_argument("--n", type=int, default=32)
    ap.add_argument("--protocol", default="ace")
    ap.add_argument("--out", type=Path, required=True, help="where the table goes")
    ap.add_argument("--runs", type=Path, default=Path("results/runs/slcf-code-ablation"), help="run directories")
    args = ap.parse_args()
    cfbench = Path(sys.executable).parent / "cfbench"
    rows = []
    for i, (label, change) in enumerate(switches(args.task).items()):
        method = "slcf_code" if change is None else "slcf"
        sets = sum((["--set", f"slcf.{k}={v}"] for k, v in (change or {}).items()), [])
        out = args.runs / f"{args.task}-{args.protocol}-{i:02d}"
        subprocess.run([str(cfbench), "run", "--task", args.task, "--methods", method, "--n", str(args.n),
                        "--protocol", args.protocol, "--metrics", "FR,COUT,S3,GT_IN,nfe", "--out", str(out), *sets],
                       check=True, stdout=subprocess.DEVNULL)
        m = pd.read_csv(out / "metrics.csv").iloc[0]
        rows.append({"variant": label, "FR": m["FR"], "COUT": m["COUT"], "S3": m["S3"], "GT_IN": m["GT_IN"],
                     "nfe": m["nfe"]})
        print(rows[-1], flush=True)
    table = pd.DataFrame(rows)
    args.out.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out / "ablation.csv", index=False)
    command = " ".join(["python", "benchmarks/slcf_code_ablation.py", "--task", args.task, "--n", str(args.n),
                        "--protocol", args.protocol, "--out", str(args.out)])
    (args.out / "ablation.md").write_text(
        f"SLCF one-at-a-time: released-code differences switched on alone ({args.task}, n={args.n}, "
        f"protocol {args.protocol}).\n\n{table.to_markdown(index=False, floatfmt='.3f')}\n\nCommand: `{command}`\n")
    print(table.to_markdown(index=False, floatfmt=".3f"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
