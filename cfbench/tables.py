"""Paper tables from one or more run directories, as LaTeX, Markdown or CSV.

Layouts follow the VCE papers: rows per task block, arrows in headers, best value bold and second
underlined per column (per task block, where there is something to compare). How a metric is shown
(label, direction, percent, decimals, what its interval means) is the metric's own fact. Captions
name the task, n, seed, the metric protocol, every stand-in model the numbers were computed with
and every metric that was not computed.

Tables are registered by number or name in ``cfbench/catalog.py``: 1 (ImageNet layout), 2 (CelebA
layout) and 3 (SLCF mask ablation) are laid out here, the experiments' tables in their modules.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from cfbench.api.metric import INTERVALS
from cfbench.catalog import METRICS, TABLES
from cfbench.errors import UserError
from cfbench.results import RunDir


@dataclass(frozen=True)
class Layout:
    title: str
    columns: tuple[str, ...]
    labels: tuple[str, ...] = ("method",)  # row-label columns after "task"
    rows: Callable[[pd.DataFrame], pd.DataFrame] | None = (
        None  # selects, labels and orders the rows
    )
    # columns whose better direction depends on the question: no arrow, no marks
    unranked: tuple[str, ...] = ()


# SLCF Table 3: method -> (Edit, Mask), in the paper's row order.
ABLATION = {
    "pixel": ("Pixel", "–"),
    "pixel_ig": ("Pixel", "IG"),
    "latent": ("Latent", "–"),
    "slcf_ig": ("Latent", "IG"),
    "slcf_lig": ("Latent", "LIG"),
    "slcf_lag1": ("Latent", "LAG*"),
    "slcf": ("Latent", "LAG"),
    "slcf_sae": ("Latent", "LAG + SAE"),
}


def labelled_rows(mapping: dict[str, tuple[str, ...]], labels: tuple[str, ...], what: str):
    """A ``Layout.rows`` that keeps the methods in ``mapping``, in its order, labelled by it."""

    def select(metrics: pd.DataFrame) -> pd.DataFrame:
        rows = metrics[metrics["method"].isin(mapping)].copy()
        if rows.empty:
            raise UserError(
                f"{what} needs runs of {', '.join(mapping)}; the given runs have none of them."
            )
        for i, label in enumerate(labels):
            rows[label] = [mapping[m][i] for m in rows["method"]]
        order = {m: i for i, m in enumerate(mapping)}
        tasks = {t: i for i, t in enumerate(dict.fromkeys(rows["task"]))}
        rows["_order"] = [(tasks[t], order[m]) for t, m in zip(rows["task"], rows["method"])]
        return rows.sort_values("_order").drop(columns="_order")

    return select


TABLE_1 = Layout("Table 1 (ImageNet layout)", ("FID", "sFID", "S3", "COUT", "FR"))
TABLE_2 = Layout("Table 2 (CelebA layout)", ("FID", "sFID", "COUT", "FR"))
TABLE_GCD_1 = Layout(
    "GCD Table 1 (CelebA layout)", ("FID", "sFID", "FVA", "FS", "MNAC", "CD", "COUT", "FR")
)
TABLE_COMPARE = Layout(
    "Method comparison",
    ("FR", "COUT", "S3", "GT_IN", "GT_SPUR", "AUROC", "nfe", "sec_per_cf"),
)
TABLE_3 = Layout(
    "Table 3 (mask ablation)",
    ("FID", "sFID", "S3", "COUT", "FR", "GT_IN"),
    ("Edit", "Mask"),
    labelled_rows(ABLATION, ("Edit", "Mask"), "Table 3 (mask ablation)"),
)

NO_SHORTCUT_POINTS = (
    5  # a smaller accuracy drop on swapped backgrounds is within a few points: no shortcut
)


def metric(name: str):
    """The metric class with ``name``'s facts (None for a column that is not a registered
    metric)."""
    return METRICS.get(name).load() if name in METRICS else None


def header(name: str, ranked: bool = True) -> str:
    m = metric(name)
    if m is None:
        return name
    arrow = {True: " ↑", False: " ↓", None: ""}[m.higher_is_better if ranked else None]
    return f"{m.label or name}{' (%)' if m.percent else ''}{arrow}"


def load_runs(paths: list[str]) -> tuple[pd.DataFrame, list[dict]]:
    runs = [RunDir.existing(p) for p in paths]
    infos = [r.read_run_json() for r in runs]
    for run, info in zip(runs, infos):
        if not {"task", "n", "seed"} <= set(info):
            raise UserError(
                f"'{run.run_json}' does not say the run's task, n and seed: it does not hold a "
                "cfbench run record (the run directory is damaged; rerun into another --out)."
            )
    return pd.concat([r.read_metrics() for r in runs], ignore_index=True), infos


def caption(
    infos: list[dict], title: str, columns: tuple[str, ...], shown: list[str], with_ci: bool
) -> str:
    """The caption for a table of ``columns`` (``shown``: those with numbers)."""
    parts = [f"{info['task']} (n={info['n']}, seed={info['seed']})" for info in infos]
    text = f"{title}. Tasks: {'; '.join(dict.fromkeys(parts))}."
    protocols = sorted({info.get("protocol", "cfbench") for info in infos})
    text += f" Metric protocol: {', '.join(protocols)}."
    stand_ins: dict[str, list[str]] = {}
    for info in infos:
        for name, provenance in info.get("metric_provenance", {}).items():
            if provenance.get("stand_in") and name in columns:
                stand_ins.setdefault(provenance["model"], [])
                stand_ins[provenance["model"]] += (
                    [name] if name not in stand_ins[provenance["model"]] else []
                )
        for role, provenance in info.get("task_provenance", {}).items():
            if isinstance(provenance, dict) and provenance.get("stand_in"):
                stand_ins.setdefault(provenance["description"], [role])
    if stand_ins:
        text += (
            " Stand-in models: "
            + "; ".join(f"{', '.join(m)} with {d}" for d, m in sorted(stand_ins.items()))
            + "."
        )
    for task, settings in _task_settings(infos):
        if (reliance := settings.get("background_reliance")) and "GT_SPUR" in columns:
            drop = 100 * reliance["swap_drop"]
            verdict = (
                f"a drop of {drop:.0f} points: a background shortcut; read GT_SPUR against it"
                if drop >= NO_SHORTCUT_POINTS
                else f"a drop of {drop:.1f} points: no background shortcut"
            )
            text += (
                f" {task}: the classifier is {100 * reliance['correlated']:.0f}% accurate with "
                "each "
                f"class's own background tone and {100 * reliance['swapped']:.0f}% with the "
                "partner's "
                f"({verdict})."
            )
    unavailable = sorted(
        {
            f"{k} ({v})"
            for info in infos
            for k, v in info.get("metrics_unavailable", {}).items()
            if k in columns
        }
    )
    if unavailable:
        text += " Not computed: " + "; ".join(unavailable) + "."
    if with_ci:
        meanings = {}
        for c in shown:
            if (m := metric(c)) is not None:
                meanings.setdefault(INTERVALS.get(m.interval, "no interval"), []).append(c)
        text += (
            " ±: " + "; ".join(f"{', '.join(cs)}: {what}" for what, cs in meanings.items()) + "."
        )
    return text


def _task_settings(infos: list[dict]) -> list[tuple[str, dict]]:
    """(task, settings) of every run; a study's run.json holds its runs' settings by task."""
    found = {}
    for info in infos:
        settings = info.get("task_settings") or info.get("config", {}).get("task_settings") or {}
        if all(isinstance(v, dict) for v in settings.values()) and settings:
            found.update(settings)
        else:
            found[info["task"]] = settings
    return list(found.items())


def _rank_marks(values: pd.Series, higher: bool | None) -> list[str]:
    """'best' / 'second' / '' per row by the metric's direction, only where values differ: a best
    needs two distinct values, a second three."""
    marks = [""] * len(values)
    ordered = sorted(set(values.dropna()), reverse=bool(higher))
    if higher is None or len(ordered) < 2:
        return marks
    for i, v in enumerate(values):
        if pd.notna(v) and v == ordered[0]:
            marks[i] = "best"
        elif pd.notna(v) and len(ordered) > 2 and v == ordered[1]:
            marks[i] = "second"
    return marks


def _fmt(name: str, value, ci, with_ci: bool) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    m = metric(name)
    scale, digits = (
        (100 if m is not None and m.percent else 1),
        (m.decimals if m is not None else 3),
    )
    text = f"{value * scale:.{digits}f}"
    has_interval = m is None or m.interval is not None
    if (
        with_ci
        and has_interval
        and ci is not None
        and not (isinstance(ci, float) and math.isnan(ci))
    ):
        text += f" ± {ci * scale:.{digits}f}"
    return text


def build_table(metrics: pd.DataFrame, layout: Layout, with_ci: bool):
    """(display frame, marks frame, shown columns): strings and 'best'/'second' marks per cell."""
    columns = [c for c in layout.columns if c in metrics and metrics[c].notna().any()]
    if not columns:
        raise UserError(
            "None of this table's metrics were computed in the given runs. Re-run with "
            "--metrics all, or choose another --table."
        )
    shown, marks = [], []
    for task, block in metrics.groupby("task", sort=False):
        block = block.reset_index(drop=True)
        cell_marks = {
            c: _rank_marks(
                block[c],
                metric(c).higher_is_better if metric(c) and c not in layout.unranked else None,
            )
            for c in columns
        }
        heads = {c: header(c, c not in layout.unranked) for c in columns}
        for i, row in block.iterrows():
            shown.append(
                {
                    "task": task,
                    **{label: row[label] for label in layout.labels},
                    **{heads[c]: _fmt(c, row[c], row.get(f"{c}_ci"), with_ci) for c in columns},
                }
            )
            marks.append({heads[c]: cell_marks[c][i] for c in columns})
    return pd.DataFrame(shown), pd.DataFrame(marks), columns


def render(
    shown: pd.DataFrame, marks: pd.DataFrame, fmt: str, title: str, labels: tuple[str, ...]
) -> str:
    if fmt == "csv":
        return shown.to_csv(index=False)
    if fmt == "markdown":
        decorated = shown.copy()
        style = {"best": "**{}**", "second": "<u>{}</u>", "": "{}"}
        for col in marks:
            decorated[col] = [style[m].format(v) for v, m in zip(shown[col], marks[col])]
        return f"{title}\n\n" + decorated.to_markdown(index=False, disable_numparse=True) + "\n"
    return _latex(shown, marks, title, labels)


_TEX = {
    "%": r"\%",
    "_": r"\_",
    "&": r"\&",
    "#": r"\#",
    "±": r"$\pm$",
    "↑": r"$\uparrow$",
    "↓": r"$\downarrow$",
    "–": "--",
    "×": r"$\times$",
    "^": r"\^{}",
    "~": r"\textasciitilde{}",
    "$": r"\$",
    "{": r"\{",
    "}": r"\}",
    "\\": r"\textbackslash{}",
}


def tex(text: str) -> str:
    """Escape the characters cfbench's tables contain; everything else is passed through."""
    return "".join(_TEX.get(ch, ch) for ch in str(text))


def _latex(shown: pd.DataFrame, marks: pd.DataFrame, title: str, labels: tuple[str, ...]) -> str:
    """LaTeX through pandas' Styler: bold best, underline second, booktabs rules, multirow tasks."""
    frame = shown.set_index(["task", *labels])
    frame.index.names = [None] * frame.index.nlevels
    frame = frame.map(tex)
    frame.columns = [tex(c) for c in frame.columns]
    frame.index = frame.index.map(lambda t: tuple(tex(x) for x in t))
    mark_frame = marks.copy()
    mark_frame.columns = frame.columns
    mark_frame.index = frame.index
    styler = frame.style.apply(
        lambda _: mark_frame.replace(
            {"best": "textbf:--rwrap;", "second": "underline:--rwrap;", "": ""}
        ),
        axis=None,
    )
    return styler.to_latex(
        caption=tex(title),
        hrules=True,
        position="t",
        position_float="centering",
        column_format="l" * frame.index.nlevels + "c" * len(frame.columns),
        multirow_align="t",
    )


def table(paths: list[str], number: str | int | None, fmt: str, with_ci: bool) -> str:
    number = None if number is None else str(number)
    if number is not None and number not in TABLES:
        raise UserError(
            f"There is no table '{number}': choose one of {', '.join(TABLES.names())}, or omit "
            "--table "
            "for every metric."
        )
    layout = (
        TABLES.get(number).load()
        if number is not None
        else Layout("Results", tuple(METRICS.names()))
    )
    metrics, infos = load_runs(paths)
    if layout.rows is not None:
        metrics = layout.rows(metrics)
    shown, marks, columns = build_table(metrics, layout, with_ci)
    return render(
        shown,
        marks,
        fmt,
        caption(infos, layout.title, layout.columns, columns, with_ci),
        layout.labels,
    )
