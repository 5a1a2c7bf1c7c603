"""The ``cfbench`` command line. User errors print one paragraph and exit with status 2."""
from __future__ import annotations

import argparse
import json
import sys
import textwrap
from pathlib import Path

from cfbench.errors import UserError


def _cmd_run(args) -> int:
    from cfbench.runner import Runner, RunSpec
    from cfbench.tables import table

    spec = RunSpec(task=args.task, methods=args.methods.split(","), n=args.n, batch_size=args.batch_size,
                   seed=args.seed, device=args.device, out=args.out, metrics=args.metrics,
                   overrides=args.set or [], regions=args.regions)
    run = Runner(spec).execute()
    print(table([str(run.root)], None, "markdown", with_ci=True))
    print(f"Results: {run.root}/ (samples.parquet, metrics.csv, run.json, images/, masks/, figures/)")
    print(f"Paper table: cfbench table {run.root} --table 1 --format latex")
    return 0


def _cmd_list(args) -> int:
    from cfbench.methods import METHODS
    from cfbench.metrics import METRICS
    from cfbench.tasks import TASKS

    registry = {"methods": METHODS, "tasks": TASKS, "metrics": METRICS}[args.kind]
    width = max(len(e.name) for e in registry.entries())
    for entry in registry.entries():
        print(f"{entry.name:<{width}}  {entry.summary}")
    return 0


def _cmd_table(args) -> int:
    from cfbench.tables import table

    print(table(args.runs, args.table, args.format, with_ci=args.ci), end="")
    return 0


def _cmd_regress(args) -> int:
    from cfbench.regress import regress

    return regress(args.run, args.baseline, args.tolerance or [], args.update)


def _cmd_localize(args) -> int:
    from cfbench.localize import LocalizeSpec, localize, parse_attributions
    from cfbench.tables import table

    spec = LocalizeSpec(task=args.task, attributions=parse_attributions(args.attributions), n=args.n,
                        batch_size=args.batch_size, seed=args.seed, device=args.device, out=args.out)
    run = localize(spec)
    print(table([str(run.root)], 4, "markdown", with_ci=True))
    print(f"Results: {run.root}/ (localize.csv, localize_samples.parquet, run.json, figures/)")
    print(f"LaTeX: cfbench table {run.root} --table 4 --format latex")
    return 0


def _cmd_assets(args) -> int:
    from cfbench.tasks.synth_tasks import ASSETS
    from cfbench.tasks.training import BUILDERS, build

    only = args.only.split(",") if args.only else None
    for name in only or []:
        if name not in BUILDERS:
            raise UserError(f"Unknown asset '{name}'. Assets: {', '.join(BUILDERS)}.")
    build(Path(args.out) if args.out else ASSETS, only)
    return 0


def _cmd_traits(args) -> int:
    from cfbench.device import resolve_device
    from cfbench.tasks import TASKS
    from cfbench.traits import isolate_traits, write_traits

    if args.top < 1:
        raise UserError(f"--top must be at least 1 (got {args.top}).")
    entry = TASKS.get(args.task)
    task = entry.load()(device=resolve_device(args.device), **entry.preset)
    report = isolate_traits(task, args.sample, top=args.top, seed=args.seed)
    out = args.out or Path("results/traits") / f"{args.task}-{args.sample}"
    png, js = write_traits(report, out)
    for e in report.edits:
        print(f"feature {e.feature:4d}: {e.before:.3f} -> {e.after:.3f} (counterfactual {e.counterfactual:.3f}), "
              f"other features changed by {e.other_features_l1:.3f}, p(target) {e.target_probability:.2f}")
    print(f"Figure: {png}\nNumbers: {js}")
    return 0


def _cmd_sae(args) -> int:
    from cfbench.device import resolve_device
    from cfbench.tasks import TASKS
    from cfbench.tasks.sae import train_task_sae

    entry = TASKS.get(args.task)
    task = entry.load()(device=resolve_device(args.device), **entry.preset)
    out = args.out or Path("results/sae") / f"{args.task}.safetensors"
    report = train_task_sae(task, args.n, out, batch_size=args.batch_size, expansion=args.expansion, l1=args.l1,
                            steps=args.steps, seed=args.seed)
    print(json.dumps(report, indent=2))
    print(f"SAE: {out}\nNumbers: {out}.json\nUse it with: export CFBENCH_SAE={out.resolve()}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="cfbench", description="Benchmark visual counterfactual explanations.")
    sub = p.add_subparsers(dest="command", required=True)
    on_task = argparse.ArgumentParser(add_help=False)   # options of every command that works on a task
    on_task.add_argument("--task", required=True)
    on_task.add_argument("--seed", type=int, default=0)
    on_task.add_argument("--device", default="auto", help="auto (CUDA if present), cpu, cuda, cuda:N")

    r = sub.add_parser("run", parents=[on_task], help="generate and score counterfactuals")
    r.add_argument("--methods", required=True, help="comma-separated method names")
    r.add_argument("--n", type=int, default=32, help="number of samples (default 32)")
    r.add_argument("--batch-size", type=int, default=16)
    r.add_argument("--out", type=Path, default=None, help="run directory (default results/runs/<task>-<time>)")
    r.add_argument("--metrics", default="all", help="all, or a comma-separated list")
    r.add_argument("--set", action="append", metavar="METHOD.PARAM=VALUE", help="override a hyperparameter")
    r.add_argument("--regions", type=Path, default=None, metavar="DIR",
                   help="region masks for region-constrained methods (rcsb): DIR/<sample id>.png, white = may change")
    r.set_defaults(func=_cmd_run)

    ls = sub.add_parser("list", help="list registered methods, tasks or metrics")
    ls.add_argument("kind", choices=["methods", "tasks", "metrics"])
    ls.set_defaults(func=_cmd_list)

    t = sub.add_parser("table", help="render a paper table from run directories")
    t.add_argument("runs", nargs="+")
    t.add_argument("--table", type=int, default=None)
    t.add_argument("--format", choices=["latex", "markdown", "csv"], default="markdown")
    t.add_argument("--ci", action="store_true", help="show 95%% bootstrap half-widths")
    t.set_defaults(func=_cmd_table)

    g = sub.add_parser("regress", help="compare a run's metrics with a baseline; exit 1 on a regression")
    g.add_argument("run")
    g.add_argument("--baseline", required=True, help="baseline JSON, e.g. results/baselines/<task>.json")
    g.add_argument("--tolerance", action="append", metavar="METRIC=VALUE",
                   help="override a tolerance: METRIC=0.05 (absolute) or METRIC=10%% (relative)")
    g.add_argument("--update", action="store_true", help="rewrite the baseline from this run")
    g.set_defaults(func=_cmd_regress)

    lo = sub.add_parser("localize", parents=[on_task], help="score attribution maps (SLCF Table 4)")
    lo.add_argument("--attributions", default="lime,ixg,gc,lc,sc,gig,gbp,ig,lag",
                    help="comma-separated: lime,ixg,gc,lc,sc,gig,gbp,ig,lag (default: all)")
    lo.add_argument("--n", type=int, default=64)
    lo.add_argument("--batch-size", type=int, default=32)
    lo.add_argument("--out", type=Path, default=None, help="directory (default results/runs/localize-<task>-<time>)")
    lo.set_defaults(func=_cmd_localize)

    a = sub.add_parser("assets", help="rebuild the shipped synthetic assets")
    a.add_argument("action", choices=["build"])
    a.add_argument("--only", default=None, help="comma-separated subset of assets")
    a.add_argument("--out", default=None, help="directory (default: the shipped tasks/assets)")
    a.set_defaults(func=_cmd_assets)

    tr = sub.add_parser("traits", parents=[on_task],
                        help="isolate the SAE traits a sample's SLCF counterfactual changes")
    tr.add_argument("--sample", required=True, help="sample id, e.g. 00003")
    tr.add_argument("--top", type=int, default=5, help="number of SAE features to isolate (default 5)")
    tr.add_argument("--out", type=Path, default=None, help="directory (default results/traits/<task>-<sample>)")
    tr.set_defaults(func=_cmd_traits)

    sa = sub.add_parser("sae", parents=[on_task],
                        help="train the sparse autoencoder a task's SLCF + SAE variant and traits need")
    sa.add_argument("action", choices=["train"])
    sa.add_argument("--n", type=int, required=True, help="first N samples of the evaluation split (10%% held out)")
    sa.add_argument("--batch-size", type=int, default=64)
    sa.add_argument("--out", type=Path, default=None,
                    help="safetensors file (default results/sae/<task>.safetensors); numbers go to <out>.json")
    sa.add_argument("--expansion", type=int, default=8, help="dictionary size / activation width (default 8)")
    sa.add_argument("--l1", type=float, default=0.3, help="sparsity weight (default 0.3)")
    sa.add_argument("--steps", type=int, default=4000, help="Adam steps (default 4000)")
    sa.set_defaults(func=_cmd_sae)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except UserError as err:
        print("cfbench: error: " + textwrap.fill(str(err), width=100), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("cfbench: interrupted; run the same command again to resume.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
