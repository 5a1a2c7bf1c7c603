"""``cfbench gcd-study``: the GCD paper's studies of its own directions, on one task.

- Sources (paper Table 3): the g-direction fitted from ``--sources`` different source images
  (``source_index`` 0, 1, ...); mean and standard deviation over the fits of FR, COUT, S3, GT_IN
  (``sources.csv``) and every fit's own metrics (``source_fits.csv``).
- Directions (paper Table 4): ``--h-candidates`` h-directions ranked by FR, and the GCD table:
  the g-direction next to the three best h-directions (FR, COUT, S3, FID, GT_IN),
  ``cfbench table OUT --table gcd``.
- Radius: the g-direction of source 0 again with r = 4, which App. F.3 calls close to optimal
  (the released configs and cfbench's default use r = 1; the paper does not state its tables'
  r), as the row ``g (r = 4)``.
- Masks (paper App. D.4, Table 5): GCD's BB-LIG maps against the plain difference |x - x_cf| of
  the same counterfactuals, by Quantus Sparseness, Complexity and Effective Complexity.

Every fit is an ordinary ``cfbench run`` in a sub-directory of ``--out`` (``g-source-<i>``,
``g-r4``, ``h-<j>``), so a killed study resumes where it stopped and each run can be inspected
alone.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd

from cfbench.api.method import SharedFits
from cfbench.errors import UserError
from cfbench.guard import DEFAULT_ROOT
from cfbench.results import RunDir, write_frame, write_json
from cfbench.tables import Layout

SOURCE_COLUMNS = ("FR", "COUT", "S3", "GT_IN")
TABLE_GCD = Layout(
    "GCD directions: the g-direction and the three h-directions with the highest FR",
    ("FR", "COUT", "S3", "FID", "GT_IN"),
    ("direction",),
    lambda m: m.assign(direction=m["method"]),
)


def _run(
    task: str,
    method: str,
    out: Path,
    n: int,
    seed: int,
    device: str,
    sets: list[str],
    shared: SharedFits,
) -> RunDir:
    from cfbench.runner import Runner, RunSpec

    spec = RunSpec(
        task=task, methods=[method], n=n, seed=seed, device=device, out=out, overrides=sets
    )
    return Runner(spec, shared_fits=shared).execute()


def sources_table(runs: list[RunDir]) -> pd.DataFrame:
    """Mean and standard deviation (ddof 1) over the fits of each column."""
    metrics = pd.concat([r.read_metrics() for r in runs], ignore_index=True)
    record = {"task": metrics["task"][0], "fits": len(runs)}
    for col in SOURCE_COLUMNS:
        values = metrics[col].astype(float)
        record[col] = values.mean() if values.notna().any() else None
        record[f"{col}_std"] = values.std(ddof=1) if values.notna().sum() > 1 else None
    return pd.DataFrame([record])


def mask_complexity(run: RunDir, method: str) -> pd.DataFrame:
    """Quantus Sparseness, Complexity and Effective Complexity of the method's masks and of
    |x - x_cf| (channel-summed) on the same samples (higher sparseness, lower complexity: more
    concentrated). A sample whose mask is all zero (BB-LIG found no baseline) has no map to score
    and is left out of both; ``no_map`` counts them."""
    import quantus
    from PIL import Image

    from cfbench.results import file_stem

    rows = pd.read_parquet(run.samples)
    rows = rows[rows["method"] == method]

    def png(path):
        return np.asarray(Image.open(path), dtype=np.float32) / 255

    masks, diffs = [], []
    for sid in rows["sample_id"]:
        stem = file_stem(sid) + ".png"
        masks.append(png(run.masks(method) / stem)[None])
        diffs.append(
            np.abs(png(run.images(method) / stem) - png(run.images() / stem)).sum(-1)[None]
        )
    has_map = np.array([m.any() for m in masks], dtype=bool)
    table = []
    for name, maps in (("BB-LIG", masks), ("|x - x_cf|", diffs)):
        maps = np.stack(maps)[has_map]
        record = {"map": name, "n": len(maps), "no_map": int((~has_map).sum())}
        x = np.zeros((len(maps), 1, *maps.shape[-2:]), np.float32)
        y = np.zeros(len(maps), np.int64)
        for label, metric in (
            ("Sparseness", quantus.Sparseness(disable_warnings=True)),
            ("Complexity", quantus.Complexity(disable_warnings=True)),
            ("EffectiveComplexity", quantus.EffectiveComplexity(disable_warnings=True)),
        ):
            if not len(maps):  # Quantus refuses an empty batch
                record[label] = float("nan")
                continue
            scores = metric(model=None, x_batch=x, y_batch=y, a_batch=maps, channel_first=True)
            record[label] = float(np.nanmean(np.asarray(scores, dtype=float)))
        table.append(record)
    return pd.DataFrame(table)


def study(
    task: str,
    n: int,
    sources: int,
    candidates: int,
    seed: int,
    device: str,
    out: Path | None,
    sets: list[str],
) -> Path:
    if sources < 2 or candidates < 3:
        raise UserError(
            f"--sources must be at least 2 (a spread needs two fits) and --h-candidates at least 3 "
            f"(got {sources} and {candidates})."
        )
    from cfbench.catalog import METHODS, TASKS
    from cfbench.spec import parse_overrides

    # the task and every --set are checked before the study's folder exists
    METHODS.params("gcd", TASKS.build(task), parse_overrides(sets, ["gcd"])["gcd"])
    out = Path(out or DEFAULT_ROOT / f"gcd-study-{task}-{dt.datetime.now():%Y%m%d-%H%M%S}")
    out.mkdir(parents=True, exist_ok=True)

    h_sets = [s.replace("gcd.", "gcd_h.", 1) for s in sets]
    # the h-candidates reuse g-source-0's proxy (same source, same data)
    shared = SharedFits()
    g_runs = [
        _run(
            task,
            "gcd",
            out / f"g-source-{i}",
            n,
            seed,
            device,
            sets + [f"gcd.source_index={i}"],
            shared,
        )
        for i in range(sources)
    ]
    h_runs = [
        _run(task, "gcd_h", out / f"h-{j}", n, seed, device, h_sets + [f"gcd_h.index={j}"], shared)
        for j in range(candidates)
    ]
    write_frame(out / "sources.csv", sources_table(g_runs))
    write_frame(
        out / "source_fits.csv",
        pd.concat(
            [r.read_metrics().assign(source_index=i) for i, r in enumerate(g_runs)],
            ignore_index=True,
        ),
    )
    h = pd.concat(
        [r.read_metrics().assign(method=f"h (index {j})") for j, r in enumerate(h_runs)],
        ignore_index=True,
    )
    best = h.sort_values("FR", ascending=False, kind="stable").head(3)
    radius = _run(task, "gcd", out / "g-r4", n, seed, device, sets + ["gcd.radius=4"], shared)
    rows = [
        g_runs[0].read_metrics().assign(method="g"),
        radius.read_metrics().assign(method="g (r = 4)"),
        best,
    ]
    write_frame(out / "metrics.csv", pd.concat(rows, ignore_index=True))
    write_frame(out / "h_ranking.csv", h)
    write_frame(out / "masks.csv", mask_complexity(g_runs[0], "gcd"))
    info = g_runs[0].read_run_json()
    write_json(
        out / "run.json",
        {
            **{
                k: info[k]
                for k in (
                    "task",
                    "n",
                    "seed",
                    "git_commit",
                    "versions",
                    "task_provenance",
                    "metrics_unavailable",
                    "metric_provenance",
                )
                if k in info
            },
            "kind": "gcd-study",
            "sources": sources,
            "h_candidates": candidates,
            "finished": True,
        },
    )
    return out


def add_command(sub) -> None:
    from cfbench.cli import task_options

    st = sub.add_parser(
        "gcd-study",
        parents=[task_options()],
        help="GCD: spread over source images, h-directions vs g, BB-LIG complexity",
    )
    st.add_argument("--n", type=int, default=32)
    st.add_argument(
        "--sources", type=int, default=5, help="fits from this many source images (paper: 5)"
    )
    st.add_argument("--h-candidates", type=int, default=8, help="h-directions to rank by FR")
    st.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="gcd.PARAM=VALUE",
        help="a GCD hyperparameter for every fit (e.g. gcd.k=32)",
    )
    st.add_argument(
        "--out",
        type=Path,
        default=None,
        help="directory (default results/runs/gcd-study-<task>-<time>)",
    )
    st.set_defaults(func=_command)


def _command(args) -> int:
    from cfbench.tables import table

    bad = [s for s in args.set if not s.startswith("gcd.")]
    if bad:
        raise UserError(
            f"gcd-study --set takes gcd.PARAM=VALUE (applied to every fit); got {', '.join(bad)}."
        )
    out = study(
        args.task,
        args.n,
        args.sources,
        args.h_candidates,
        args.seed,
        args.device,
        args.out,
        args.set,
    )
    srcs = pd.read_csv(out / "sources.csv")
    print(f"g-direction over {int(srcs['fits'][0])} source images (mean ± std):")
    print(
        ", ".join(
            f"{c} {srcs[c][0]:.3f} ± {srcs[c + '_std'][0]:.3f}"
            for c in SOURCE_COLUMNS
            if pd.notna(srcs[c][0]) and pd.notna(srcs[c + "_std"][0])
        )
    )
    print(table([str(out)], "gcd", "markdown", with_ci=True))
    print("Mask concentration (Quantus):")
    print(pd.read_csv(out / "masks.csv").to_markdown(index=False, floatfmt=".3f"))
    print(
        f"Results: {out}/ (sources.csv, source_fits.csv, metrics.csv, h_ranking.csv, masks.csv, "
        "one run per fit)"
    )
    return 0
