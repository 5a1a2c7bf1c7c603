"""The ``cfbench`` command line. User errors print one paragraph and exit with status 2.

Experiments add their own commands (``EXPERIMENTS`` in ``cfbench/catalog.py``); an experiment's
module is imported only when its command runs, so ``cfbench list`` and ``cfbench run`` import none.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import textwrap
from pathlib import Path

from cfbench.catalog import (
    ATTRIBUTIONS,
    CLASSIFIERS,
    COMPONENTS,
    EXPERIMENTS,
    METHODS,
    METRICS,
    PROTOCOLS,
    TABLES,
    TASKS,
    WORLDS,
)
from cfbench.errors import UserError


def task_options(task: bool = True) -> argparse.ArgumentParser:
    """Options of every command that works on a task (a parent parser); ``task`` False for commands
    that choose their tasks themselves."""
    on_task = argparse.ArgumentParser(add_help=False)
    if task:
        on_task.add_argument("--task", required=True)
    on_task.add_argument("--seed", type=int, default=0)
    on_task.add_argument(
        "--device", default="auto", help="auto (CUDA if present), cpu, cuda, cuda:N"
    )
    return on_task


RUN_DEFAULTS = {
    "n": 32,
    "seed": 0,
    "batch_size": "16",
    "metrics": "all",
    "protocol": "cfbench",
    "dtype": "float32",
    "compile": None,
}


def _with_run_options(spec, args):
    """A recorded run repeated with the options given next to --config, each said aloud."""
    changes = {k: getattr(args, k) for k in RUN_DEFAULTS if getattr(args, k) is not None}
    if changes.get("compile") == "none":
        changes["compile"] = None
    if "batch_size" in changes:
        changes["batch_size"], changes["batch_sizes"] = parse_batch_sizes(changes["batch_size"])
    for key, value in changes.items():
        if key != "batch_sizes" and value != getattr(spec, key):
            print(
                f"--config: --{key.replace('_', '-')} {value} instead of the recorded "
                f"{getattr(spec, key)}.",
                file=sys.stderr,
            )
    return dataclasses.replace(spec, **changes)


def _cmd_run(args) -> int:
    from cfbench.provenance import git_commit
    from cfbench.runner import Runner, RunSpec
    from cfbench.tables import table

    if args.config is not None:
        given = {k: getattr(args, k) for k in ("task", "methods", "set") if getattr(args, k)}
        if given:
            raise UserError(
                f"--config repeats a recorded run; drop {', '.join('--' + k for k in given)} "
                "(or run without --config)."
            )
        spec = RunSpec.from_run_json(
            args.config, out=args.out, device=args.device, regions=args.regions
        )
        spec = _with_run_options(spec, args)
        _compare_with_record(args.config, git_commit())
    else:
        for key, value in RUN_DEFAULTS.items():
            if getattr(args, key) is None:
                setattr(args, key, value)
        if not args.task or not args.methods:
            raise UserError(
                "cfbench run needs --task and --methods (or --config RUN_DIR/run.json to repeat a "
                "run)."
            )
        default_batch, per_method = parse_batch_sizes(args.batch_size)
        spec = RunSpec(
            task=args.task,
            methods=args.methods.split(","),
            n=args.n,
            batch_size=default_batch,
            batch_sizes=per_method,
            seed=args.seed,
            device=args.device,
            out=args.out,
            metrics=args.metrics,
            overrides=args.set or [],
            regions=args.regions,
            protocol=args.protocol,
            dtype=args.dtype,
            compile=None if args.compile == "none" else args.compile,
        )
    spec = dataclasses.replace(spec, wait=args.wait)
    if args.shards != 1 and args.launcher == "none":
        raise UserError(
            f"--shards {args.shards} needs --launcher slurm or local (torchrun sets its own ranks)."
        )
    if args.launcher != "none":
        from cfbench.launch import submit

        root, jobs = submit(
            spec,
            args.launcher,
            args.shards,
            {
                "partition": args.partition,
                "time": args.time,
                "gpus": args.gpus_per_node,
                "cpus": args.cpus_per_task,
                "parallel": args.array_parallelism,
            },
        )
        print(
            f"Submitted {len(jobs)} shard(s) of {root} ({args.launcher}): job ids "
            f"{', '.join(str(j.job_id) for j in jobs)}; logs in {root / 'jobs'}."
        )
        if args.launcher == "slurm":
            print(f"The last shard to finish summarises the run; or: cfbench finalize {root}")
            return 0
        for job in jobs:
            job.result()  # local processes: wait, and re-raise a shard's failure
        from cfbench.results import RunDir

        run = RunDir.existing(root)
        if not run.metrics.exists():
            run = Runner(dataclasses.replace(spec, out=root)).finalize_only()
    else:
        runner = Runner(spec)
        run = runner.execute()
        if not runner.shard.leader:  # torchrun: rank 0 reports
            return 0
    print(table([str(run.root)], None, "markdown", with_ci=True))
    print(
        f"Results: {run.root}/ (samples.parquet, metrics.csv, run.json, images/, masks/, figures/)"
    )
    print(f"Paper table: cfbench table {run.root} --table 1 --format latex")
    return 0


def parse_batch_sizes(text: str) -> tuple[int, dict[str, int]]:
    """``--batch-size 16``, ``slcf=32,rcsb_a=4`` or ``8,rcsb_a=2`` -> (default, per method)."""
    default, per_method = 16, {}
    if not text.strip():
        raise UserError(
            "--batch-size is empty: give N or METHOD=N[,METHOD=N...], e.g. 16 or slcf=32."
        )
    for item in (t.strip() for t in text.split(",") if t.strip()):
        name, eq, value = item.rpartition("=")
        try:
            size = int(value)
        except ValueError:
            raise UserError(
                f"--batch-size takes N or METHOD=N[,METHOD=N...], e.g. 16 or slcf=32,rcsb_a=4; "
                f"got '{text}'."
            ) from None
        if eq:
            per_method[name] = size
        else:
            default = size
    return default, per_method


def _cmd_rescore(args) -> int:
    from cfbench.rescore import rescore

    _, table = rescore(args.run, args.protocol, args.device, args.metrics)
    print(table.to_markdown(index=False, floatfmt=".4f"))
    print(f"Written: {Path(args.run) / ('metrics-' + str(table['protocol'][0]) + '.csv')}")
    return 0


def _cmd_finalize(args) -> int:
    from cfbench.results import RunDir
    from cfbench.runner import Runner, RunSpec
    from cfbench.tables import table

    run_json = Path(args.run) / "run.json"
    if not run_json.exists():
        raise UserError(f"'{args.run}' is not a cfbench run directory (it has no run.json).")
    RunDir(Path(args.run)).read_run_record()  # a damaged record is named as such
    run = Runner(
        RunSpec.from_run_json(run_json, out=Path(args.run), wait=args.wait)
    ).finalize_only()
    print(table([str(run.root)], None, "markdown", with_ci=True))
    return 0


def _compare_with_record(path: Path, commit: str | None) -> None:
    """Say when the code or the model weights differ from the ones the recorded run used."""
    info = json.loads(Path(path).read_text())
    if info.get("git_commit") and commit and info["git_commit"] != commit:
        print(
            f"Note: {path} was made at commit {info['git_commit'][:10]}; this is {commit[:10]}: "
            "numbers may "
            "differ where the code changed.",
            file=sys.stderr,
        )
    recorded = info.get("config", {}).get("components", {})
    current = TASKS.build(info["config"]["task"]).provenance(list(recorded))
    changed = [r for r, digest in recorded.items() if current.get(r, {}).get("sha256") != digest]
    if changed:
        print(
            f"Note: the weights of {', '.join(changed)} differ from the ones {path} recorded: "
            "numbers will "
            "differ.",
            file=sys.stderr,
        )


LISTS = {
    "methods": METHODS,
    "tasks": TASKS,
    "metrics": METRICS,
    "attributions": ATTRIBUTIONS,
    "protocols": PROTOCOLS,
    "components": COMPONENTS,
    "classifiers": CLASSIFIERS,
    "worlds": WORLDS,
    "tables": TABLES,
    "experiments": EXPERIMENTS,
}


def _cmd_list(args) -> int:
    rows = [(e.name, e.summary) for e in LISTS[args.kind].entries()]
    if args.kind == "components":  # the classifier role's built-in kinds
        rows += [(f"classifier:{e.name}", e.summary) for e in CLASSIFIERS.entries()]
    width = max(len(name) for name, _ in rows)
    for name, summary in rows:
        print(f"{name:<{width}}  {summary}")
    return 0


def _cmd_table(args) -> int:
    from cfbench.tables import table

    print(table(args.runs, args.table, args.format, with_ci=args.ci), end="")
    return 0


def _cmd_regress(args) -> int:
    from cfbench.regress import regress

    return regress(args.run, args.baseline, args.tolerance or [], args.update)


def _cmd_assets(args) -> int:
    from cfbench.api.component import ASSETS
    from cfbench.assets import build

    build(Path(args.out) if args.out else ASSETS, args.only.split(",") if args.only else None)
    return 0


def _cmd_sae(args) -> int:
    from cfbench.device import resolve_device

    task = TASKS.build(args.task, device=resolve_device(args.device))
    out = args.out or Path("results/sae") / f"{args.task}.safetensors"
    report = (
        COMPONENTS.get("sae")
        .load()
        .train_for_task(
            task,
            args.n,
            out,
            batch_size=args.batch_size,
            expansion=args.expansion,
            l1=args.l1,
            steps=args.steps,
            seed=args.seed,
        )
    )
    print(json.dumps(report, indent=2))
    print(f"SAE: {out}\nNumbers: {out}.json\nUse it with: export CFBENCH_SAE={out.resolve()}")
    return 0


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; an experiment's own options are added only when ``command`` is that experiment
    (its module is imported then), the others are listed by name and summary."""
    p = argparse.ArgumentParser(
        prog="cfbench", description="Benchmark visual counterfactual explanations."
    )
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("run", help="generate and score counterfactuals")
    r.add_argument("--task", default=None)
    r.add_argument("--methods", default=None, help="comma-separated method names")
    r.add_argument(
        "--config",
        type=Path,
        default=None,
        metavar="RUN_JSON",
        help="repeat a recorded run (task, methods with their hyperparameters, n, seed, metrics)",
    )
    r.add_argument("--seed", type=int, default=None, help="default 0")
    r.add_argument("--device", default="auto", help="auto (CUDA if present), cpu, cuda, cuda:N")
    r.add_argument("--n", type=int, default=None, help="number of samples (default 32)")
    r.add_argument(
        "--batch-size",
        default=None,
        metavar="N|METHOD=N,...",
        help="samples per batch: 16, or per method slcf=32,rcsb_a=4 (a bare N sets the default)",
    )
    r.add_argument(
        "--out", type=Path, default=None, help="run directory (default results/runs/<task>-<time>)"
    )
    r.add_argument("--metrics", default=None, help="all (default), or a comma-separated list")
    r.add_argument(
        "--set", action="append", metavar="METHOD.PARAM=VALUE", help="override a hyperparameter"
    )
    r.add_argument(
        "--regions",
        type=Path,
        default=None,
        metavar="DIR",
        help=(
            "region masks for region-constrained methods (rcsb): DIR/<sample id>.png, white = may "
            "change"
        ),
    )
    r.add_argument(
        "--wait",
        action="store_true",
        help="if another process writes --out, wait for it instead of exit 2",
    )
    r.add_argument(
        "--protocol",
        default=None,
        choices=PROTOCOLS.names(),
        help="metric protocol: which samples, orderings and splits each metric uses "
        "(`cfbench list protocols`)",
    )
    r.add_argument(
        "--dtype",
        default=None,
        help="float32 (default), bfloat16 or float16 for the generative networks; per component "
        "as ROLE=DTYPE (e.g. bfloat16,diffae=float32); classifiers stay float32",
    )
    r.add_argument(
        "--compile",
        nargs="?",
        const="inductor",
        default=None,
        help="torch.compile the generative networks (backend: inductor, aot_eager; 'none' to "
        "turn a recorded one off); eager with a warning where it fails",
    )
    r.add_argument(
        "--launcher",
        choices=["none", "slurm", "local"],
        default="none",
        help="slurm: submit --shards array tasks through submitit; local: the same as local "
        "processes",
    )
    r.add_argument("--shards", type=int, default=1, help="with --launcher: number of array tasks")
    r.add_argument("--partition", default=None, help="Slurm partition")
    r.add_argument("--time", type=int, default=None, help="Slurm time limit per shard, minutes")
    r.add_argument("--gpus-per-node", type=int, default=None, help="Slurm GPUs per shard")
    r.add_argument("--cpus-per-task", type=int, default=None, help="Slurm CPUs per shard")
    r.add_argument(
        "--array-parallelism", type=int, default=None, help="Slurm: most shards running at once"
    )
    r.set_defaults(func=_cmd_run)

    rs = sub.add_parser(
        "rescore", help="recompute every metric of a finished run from its directory"
    )
    rs.add_argument("run")
    rs.add_argument(
        "--protocol",
        default=None,
        choices=PROTOCOLS.names(),
        help="default: the run's own (then the result must equal its metrics.csv)",
    )
    rs.add_argument("--device", default="auto")
    rs.add_argument(
        "--metrics",
        default=None,
        help="comma-separated metric names or 'all' (default: the run's own); adds metrics "
        "registered after the run, e.g. OFR",
    )
    rs.set_defaults(func=_cmd_rescore)

    fz = sub.add_parser("finalize", help="summarise a sharded run whose shards have all finished")
    fz.add_argument("run")
    fz.add_argument("--wait", action="store_true", help="wait for another process summarising it")
    fz.set_defaults(func=_cmd_finalize)

    ls = sub.add_parser("list", help="list registered " + ", ".join(LISTS))
    ls.add_argument("kind", choices=list(LISTS))
    ls.set_defaults(func=_cmd_list)

    t = sub.add_parser("table", help="render a paper table from run directories")
    t.add_argument("runs", nargs="+")
    t.add_argument("--table", default=None, help="1, 2, 3, 4, ... (see `cfbench list tables`)")
    t.add_argument("--format", choices=["latex", "markdown", "csv"], default="markdown")
    t.add_argument(
        "--ci", action="store_true", help="show interval half-widths (the caption says which)"
    )
    t.set_defaults(func=_cmd_table)

    g = sub.add_parser(
        "regress", help="compare a run's metrics with a baseline; exit 1 on a regression"
    )
    g.add_argument("run")
    g.add_argument(
        "--baseline", required=True, help="baseline JSON, e.g. results/baselines/<task>.json"
    )
    g.add_argument(
        "--tolerance",
        action="append",
        metavar="METRIC=VALUE",
        help="override a tolerance: METRIC=0.05 (absolute) or METRIC=10%% (relative)",
    )
    g.add_argument("--update", action="store_true", help="rewrite the baseline from this run")
    g.set_defaults(func=_cmd_regress)

    a = sub.add_parser("assets", help="rebuild the shipped synthetic assets")
    a.add_argument("action", choices=["build"])
    a.add_argument("--only", default=None, help="comma-separated subset of assets")
    a.add_argument("--out", default=None, help="directory (default: the shipped tasks/assets)")
    a.set_defaults(func=_cmd_assets)

    sa = sub.add_parser(
        "sae",
        parents=[task_options()],
        help="train the sparse autoencoder a task's SLCF + SAE variant and traits need",
    )
    sa.add_argument("action", choices=["train"])
    sa.add_argument(
        "--n",
        type=int,
        required=True,
        help="first N samples of the evaluation split (10%% held out)",
    )
    sa.add_argument("--batch-size", type=int, default=64)
    sa.add_argument(
        "--out",
        type=Path,
        default=None,
        help="safetensors file (default results/sae/<task>.safetensors); numbers go to <out>.json",
    )
    sa.add_argument(
        "--expansion", type=int, default=8, help="dictionary size / activation width (default 8)"
    )
    sa.add_argument("--l1", type=float, default=0.3, help="sparsity weight (default 0.3)")
    sa.add_argument("--steps", type=int, default=4000, help="Adam steps (default 4000)")
    sa.set_defaults(func=_cmd_sae)

    for entry in EXPERIMENTS.entries():
        if entry.name == command:
            entry.load()(sub)
        else:
            sub.add_parser(entry.name, help=entry.summary, add_help=False)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    # `torchrun ... -m cfbench -- run ...`: the separator shields our options
    if argv[:1] == ["--"]:
        argv = argv[1:]
    command = next((a for a in argv if not a.startswith("-")), None)
    args = build_parser(command).parse_args(argv)
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
