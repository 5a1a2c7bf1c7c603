"""``cfbench slcf-code-ablation``: where SLCF's published COUT comes from.

The paper-text ``slcf`` with each difference of the released code (``slcf_code``, cfg_2) switched
on alone, and the full ``slcf_code``, on one task. A switch's values are the released code's,
converted to cfbench's latent units exactly as ``slcf_code`` converts them (the effective units of
the method). Every variant is an ordinary run in its own directory under ``--runs`` (resumable);
the table (Markdown and CSV) goes to ``--out``.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

COLUMNS = ("FR", "COUT", "S3", "GT_IN", "nfe")


def switches(task_name: str, device) -> dict[str, dict | None]:
    """label -> the ``slcf`` overrides of one released-code difference (None: ``slcf_code``
    itself)."""
    from cfbench.catalog import METHODS, TASKS

    code = METHODS.build("slcf_code", TASKS.build(task_name, device=device), device)
    lr, noise, lambda_s, sigma = code.lr, code.noise, code.lambda_s, code.sigma
    return {
        "paper text (slcf)": {},
        "+ stop rule (p > 0.95, 5 steps, both stages)": {
            "stop_rule": "code",
            "confidence": 0.95,
            "patience": 5,
        },
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


def ablation(
    task: str, n: int, protocol: str, out: Path, runs: Path, seed: int, device: str
) -> pd.DataFrame:
    from cfbench.device import resolve_device
    from cfbench.runner import Runner, RunSpec

    rows = []
    for i, (label, change) in enumerate(switches(task, resolve_device(device)).items()):
        method = "slcf_code" if change is None else "slcf"
        spec = RunSpec(
            task=task,
            methods=[method],
            n=n,
            seed=seed,
            device=device,
            protocol=protocol,
            metrics=",".join(COLUMNS),
            out=runs / f"{task}-{protocol}-{i:02d}",
            overrides=[f"slcf.{k}={v}" for k, v in (change or {}).items()],
        )
        metrics = pd.read_csv(Runner(spec).execute().metrics).iloc[0]
        rows.append({"variant": label, **{c: metrics[c] for c in COLUMNS}})
    table = pd.DataFrame(rows)
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "ablation.csv", index=False)
    command = f"cfbench slcf-code-ablation --task {task} --n {n} --protocol {protocol} --out {out}"
    (out / "ablation.md").write_text(
        f"SLCF one-at-a-time: released-code differences switched on alone ({task}, n={n}, protocol "
        f"{protocol}).\n\n{table.to_markdown(index=False, floatfmt='.3f')}\n\nCommand: "
        f"`{command}`\n"
    )
    return table


def add_command(subparsers) -> None:
    from cfbench.catalog import PROTOCOLS
    from cfbench.cli import task_options

    p = subparsers.add_parser(
        "slcf-code-ablation",
        parents=[task_options(task=False)],
        help="SLCF: each released-code difference switched on alone",
    )
    p.add_argument("--task", default="synth_cheetah_cougar")
    p.add_argument("--n", type=int, default=32)
    p.add_argument("--protocol", default="ace", choices=PROTOCOLS.names())
    p.add_argument("--out", type=Path, required=True, help="where the table goes")
    p.add_argument(
        "--runs", type=Path, default=Path("results/runs/slcf-code-ablation"), help="run directories"
    )

    def run(args) -> int:
        table = ablation(
            args.task, args.n, args.protocol, args.out, args.runs, args.seed, args.device
        )
        print(table.to_markdown(index=False, floatfmt=".3f"))
        return 0

    p.set_defaults(func=run)
