"""``cfbench shortcut-study``: which methods reveal a classifier's background shortcut, and which
suppress it (CECAS's stated aim).

On each pair's shortcut task (``synth_<pair>_shortcut``: the classifier reads the background tone)
and, as control, the unbiased task, every method runs on the same samples; the table gives FR,
GT_IN, GT_SPUR and S3. Editing the background is faithful to the shortcut classifier (a method
that reveals the shortcut has a higher GT_SPUR there than on the control); CECAS's spurious term
should lower GT_SPUR against ``cecas_no_ls`` on the shortcut task, which ``paired.csv`` tests:
the per-sample difference GT_SPUR(cecas) - GT_SPUR(cecas_no_ls), its mean and 95% percentile
bootstrap interval (scipy). ``probes.csv`` says what each spurious-factor VAE holds (label and
background tone predicted from C and from S, measured when the asset was built).

Each task is an ordinary ``cfbench run`` in ``--out/<task>/``, so a killed study resumes where it
stopped. ``cfbench table OUT --table shortcut`` renders the table.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd

from cfbench.errors import UserError
from cfbench.guard import DEFAULT_ROOT
from cfbench.results import RunDir, write_frame, write_json
from cfbench.tables import Layout

PAIRS = ("cheetah_cougar", "zebra_sorrel", "egyptian_persian")
METHODS = ("slcf", "rcsb_a", "gcd", "pgd", "cecas", "cecas_no_ls")
METRICS = ("FR", "GT_IN", "GT_SPUR", "S3")
TABLE_SHORTCUT = Layout(
    "Shortcut study: edits on the background (GT_SPUR) with a shortcut classifier and without. "
    "GT_SPUR is not ranked here: with a classifier that reads the background, editing it "
    "is faithful",
    METRICS,
    ("classifier", "method"),
    lambda m: m.assign(
        classifier=np.where(m["task"].str.endswith("_shortcut"), "shortcut", "unbiased")
    ),
    unranked=("GT_SPUR",),
)


def paired_difference(
    run: RunDir, column: str = "GT_SPUR", a: str = "cecas", b: str = "cecas_no_ls", seed: int = 0
) -> dict:
    """Mean of the per-sample difference column(a) - column(b) over samples both scored, with its
    95% percentile-bootstrap interval."""
    from scipy.stats import bootstrap

    rows = pd.read_parquet(run.samples)
    wide = rows.pivot_table(index="sample_id", columns="method", values=column)
    if a not in wide or b not in wide:
        raise UserError(f"{run.path} has no {column} of both {a} and {b}.")
    diff = (wide[a] - wide[b]).dropna().to_numpy(dtype=float)
    record = {
        "task": run.read_run_json()["task"],
        "difference": f"{column}({a}) - {column}({b})",
        "n": len(diff),
        "mean": float(diff.mean()) if len(diff) else None,
        "ci_low": None,
        "ci_high": None,
    }
    if len(diff) >= 2:
        ci = bootstrap(
            (diff,),
            np.mean,
            confidence_level=0.95,
            method="percentile",
            n_resamples=2000,
            random_state=seed,
        ).confidence_interval
        record.update(ci_low=float(ci.low), ci_high=float(ci.high))
        record["excludes_zero"] = bool(ci.high < 0 or ci.low > 0)
    return record


def probe_table() -> pd.DataFrame:
    """The spurious-factor VAEs' probes from the asset manifest (what C and S predict)."""
    import json

    from cfbench.api.component import ASSETS

    manifest = json.loads((ASSETS / "manifest.json").read_text())
    rows = []
    for asset, classifier in (("spurious_vae", "unbiased"), ("shortcut_spurious_vae", "shortcut")):
        if asset in manifest:
            probes = manifest[asset]["probes"]
            rows += [
                {
                    "classifier": classifier,
                    "part": part,
                    "label_accuracy": probes[f"label_from_{part}"],
                    "tone_accuracy": probes[f"tone_from_{part}"],
                    "chance": probes["chance"],
                    "g_accuracy": manifest[asset]["g_accuracy"],
                }
                for part in ("C", "S")
            ]
    return pd.DataFrame(rows)


def figure(metrics: pd.DataFrame, out: Path) -> None:
    """GT_SPUR per method, shortcut classifier next to the unbiased one, with 95% intervals; one
    panel per pair (averaging pairs would average their intervals too)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = TABLE_SHORTCUT.rows(metrics)
    metrics = metrics.assign(
        pair=metrics["task"].str.removeprefix("synth_").str.removesuffix("_shortcut")
    )
    methods, pairs = list(dict.fromkeys(metrics["method"])), list(dict.fromkeys(metrics["pair"]))
    fig, axes = plt.subplots(
        len(pairs),
        1,
        figsize=(1.4 * len(methods) + 2, 2.6 * len(pairs) + 0.6),
        sharex=True,
        squeeze=False,
    )
    for ax, pair in zip(axes[:, 0], pairs):
        for k, (kind, colour) in enumerate((("unbiased", "#8da0cb"), ("shortcut", "#fc8d62"))):
            part = metrics[(metrics["pair"] == pair) & (metrics["classifier"] == kind)].set_index(
                "method"
            )
            part = part.reindex(methods)
            ax.bar(
                np.arange(len(methods)) + (k - 0.5) * 0.38,
                part["GT_SPUR"],
                0.38,
                yerr=part["GT_SPUR_ci"],
                color=colour,
                label=f"{kind} classifier",
                capsize=3,
            )
        ax.set_title(pair.replace("_", " / "), fontsize=10)
        ax.set_ylabel("GT_SPUR (edit share\non background)")
    axes[-1, 0].set_xticks(np.arange(len(methods)), methods)
    fig.legend(*axes[0, 0].get_legend_handles_labels(), loc="upper center", ncol=2, frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.35 / fig.get_figheight()))
    fig.savefig(out, dpi=150)
    plt.close(fig)


def study(
    pairs: list[str],
    methods: list[str],
    n: int,
    seed: int,
    device: str,
    out: Path | None,
    sets: list[str] = (),
) -> Path:
    from cfbench.runner import Runner, RunSpec

    unknown = [p for p in pairs if p not in PAIRS]
    if unknown:
        raise UserError(f"Unknown pair(s) {', '.join(unknown)}; pairs: {', '.join(PAIRS)}.")
    out = Path(out or DEFAULT_ROOT / f"shortcut-study-{dt.datetime.now():%Y%m%d-%H%M%S}")
    out.mkdir(parents=True, exist_ok=True)
    runs = []
    for pair in pairs:
        for task in (f"synth_{pair}_shortcut", f"synth_{pair}"):
            spec = RunSpec(
                task=task,
                methods=list(methods),
                n=n,
                seed=seed,
                device=device,
                out=out / task,
                metrics=",".join(METRICS + ("nfe", "sec_per_cf")),
                overrides=list(sets),
            )
            runs.append(Runner(spec).execute())
    metrics = pd.concat([r.read_metrics() for r in runs], ignore_index=True)
    write_frame(out / "metrics.csv", metrics)
    if {"cecas", "cecas_no_ls"} <= set(methods):
        write_frame(
            out / "paired.csv", pd.DataFrame([paired_difference(r, seed=seed) for r in runs])
        )
    write_frame(out / "probes.csv", probe_table())
    (out / "figures").mkdir(exist_ok=True)
    figure(metrics, out / "figures" / "gt_spur.png")
    info = runs[0].read_run_json()
    write_json(
        out / "run.json",
        {
            "kind": "shortcut-study",
            "task": ", ".join(r.read_run_json()["task"] for r in runs),
            "n": n,
            "seed": seed,
            "methods": list(methods),
            "pairs": list(pairs),
            "protocol": info.get("protocol", "cfbench"),
            "git_commit": info.get("git_commit"),
            "versions": info.get("versions"),
            "task_settings": {
                r.read_run_json()["task"]: r.read_run_json()["config"]["task_settings"]
                for r in runs
            },
            "metric_provenance": info.get("metric_provenance", {}),
            "finished": True,
        },
    )
    return out


def add_command(sub) -> None:
    from cfbench.cli import task_options

    st = sub.add_parser(
        "shortcut-study",
        parents=[task_options(task=False)],
        help="shortcut vs unbiased classifier: which methods edit the background",
    )
    st.add_argument(
        "--pairs", default=",".join(PAIRS), help=f"comma-separated subset of {', '.join(PAIRS)}"
    )
    st.add_argument("--methods", default=",".join(METHODS), help="methods to compare")
    st.add_argument("--n", type=int, default=32)
    st.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="METHOD.PARAM=VALUE",
        help="a hyperparameter for every task's run (repeatable)",
    )
    st.add_argument(
        "--out",
        type=Path,
        default=None,
        help="directory (default results/runs/shortcut-study-<time>)",
    )
    st.set_defaults(func=_command)


def _command(args) -> int:
    out = study(
        args.pairs.split(","),
        args.methods.split(","),
        args.n,
        args.seed,
        args.device,
        args.out,
        args.set,
    )
    metrics = pd.read_csv(out / "metrics.csv")
    print(
        TABLE_SHORTCUT.rows(metrics)[["task", "method", *METRICS]].to_markdown(
            index=False, floatfmt=".3f"
        )
    )
    if (out / "paired.csv").exists():
        print(pd.read_csv(out / "paired.csv").to_markdown(index=False, floatfmt=".3f"))
    print(pd.read_csv(out / "probes.csv").to_markdown(index=False, floatfmt=".3f"))
    print(
        f"Results: {out}/ (metrics.csv, paired.csv, probes.csv, figures/gt_spur.png, one run per "
        "task)"
    )
    return 0
