"""Paper tables from one or more run directories, as LaTeX, Markdown or CSV.

Layouts follow the VCE papers: rows per task block, arrows in headers, best value bold and second
underlined per column and task block, but only where the marked value's interval does not overlap
the next one's; values tied with the best within their intervals are italic, and a value without
an interval ranks nothing. A FID or sFID resting on fewer samples than its features' dimensions is
marked with a dagger and ranks nothing. How a metric is shown
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
    ("FR", "OFR", "GT_IN", "GT_SPUR", "KID", "Realism", "COUT", "S3", "sec_per_cf"),
)
DAGGER = "†"
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
    for info in infos:
        setting = info.get("config", {}).get("numerics")
        if setting:
            compiled = f", compiled ({setting['compile']})" if setting.get("compile") else ""
            text += (
                f" {info['task']}: generative networks in {setting['dtype']}{compiled}; "
                "classifiers and metrics in float32."
            )
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
        for provenance in info.get("method_provenance", {}).values():
            for what, description in (provenance or {}).get("stand_ins", {}).items():
                stand_ins.setdefault(description, [])
                stand_ins[description] += [what] if what not in stand_ins[description] else []
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


def _rank_marks(values: pd.Series, cis: pd.Series, higher: bool | None) -> list[str]:
    """'best' / 'second' / 'tie' / '' per row by the metric's direction. The best is marked only
    where its interval does not overlap the runner-up's (else every value whose interval overlaps
    the best's is a 'tie'), the second only where it is separated from the third the same way;
    values without an interval rank nothing."""
    marks = [""] * len(values)
    rows = [
        (float(v), float(c), i)
        for i, (v, c) in enumerate(zip(values, cis))
        if pd.notna(v) and c is not None and pd.notna(c)
    ]
    if higher is None or len(rows) < 2:
        return marks
    rows.sort(key=lambda r: -r[0] if higher else r[0])

    def apart(a, b) -> bool:  # a ranks before b with no overlap of the intervals
        return a[0] - a[1] > b[0] + b[1] if higher else a[0] + a[1] < b[0] - b[1]

    if not apart(rows[0], rows[1]):
        for row in rows:
            if not apart(rows[0], row):  # the best itself included
                marks[row[2]] = "tie"
        return marks
    marks[rows[0][2]] = "best"
    if len(rows) > 2 and apart(rows[1], rows[2]):
        marks[rows[1][2]] = "second"
    return marks


def underpowered(name: str, n, info: dict | None) -> bool:
    """Whether a value rests on fewer samples than its features' dimensions (run.json's metric
    provenance gives them)."""
    m = metric(name)
    if m is None or not m.needs_samples_over_dims or info is None or pd.isna(n):
        return False
    dims = info.get("metric_provenance", {}).get(name, {}).get("feature_dims")
    return dims is not None and m.samples_used(int(n)) < dims


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


def build_table(metrics: pd.DataFrame, layout: Layout, with_ci: bool, infos: list[dict] = ()):
    """(display frame, marks frame, shown columns, whether a dagger was drawn): strings and
    'best'/'second'/'tie' marks per cell."""
    columns = [c for c in layout.columns if c in metrics and metrics[c].notna().any()]
    if not columns:
        raise UserError(
            "None of this table's metrics were computed in the given runs. Re-run with "
            "--metrics all, or choose another --table."
        )
    by_task = {info["task"]: info for info in infos}
    shown, marks, dagger = [], [], False
    for task, block in metrics.groupby("task", sort=False):
        block = block.reset_index(drop=True)
        weak = {
            c: [underpowered(c, n, by_task.get(task)) for n in block.get("n", [None] * len(block))]
            for c in columns
        }
        cell_marks = {}
        for c in columns:
            has_interval = metric(c) is not None and metric(c).interval is not None
            cis = block.get(f"{c}_ci") if has_interval else None
            cis = cis if cis is not None else pd.Series([None] * len(block))
            ranked = block[c].where(~pd.Series(weak[c], dtype=bool))
            higher = metric(c).higher_is_better if metric(c) and c not in layout.unranked else None
            cell_marks[c] = _rank_marks(ranked, cis, higher)
        heads = {c: header(c, c not in layout.unranked) for c in columns}
        for i, row in block.iterrows():
            cells = {}
            for c in columns:
                text = _fmt(c, row[c], row.get(f"{c}_ci"), with_ci)
                if weak[c][i] and text != "–":
                    text, dagger = text + DAGGER, True
                cells[heads[c]] = text
            shown.append({"task": task, **{label: row[label] for label in layout.labels}, **cells})
            marks.append({heads[c]: cell_marks[c][i] for c in columns})
    return pd.DataFrame(shown), pd.DataFrame(marks), columns, dagger


def render(
    shown: pd.DataFrame, marks: pd.DataFrame, fmt: str, title: str, labels: tuple[str, ...]
) -> str:
    if fmt == "csv":
        return shown.to_csv(index=False)
    if fmt == "markdown":
        decorated = shown.copy()
        style = {"best": "**{}**", "second": "<u>{}</u>", "tie": "*{}*", "": "{}"}
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
    "†": r"$^\dagger$",
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
            {
                "best": "textbf:--rwrap;",
                "second": "underline:--rwrap;",
                "tie": "textit:--rwrap;",
                "": "",
            }
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
    shown, marks, columns, dagger = build_table(metrics, layout, with_ci, infos)
    text = caption(infos, layout.title, layout.columns, columns, with_ci)
    text += " Bold: best, underlined: second, each only where its interval does not overlap the"
    text += " next value's; italic: tied with the best within the intervals."
    if dagger:
        text += (
            f" {DAGGER}: fewer samples than the features' dimensions: the value is biased by n "
            "and ranks nothing."
        )
    return render(shown, marks, fmt, text, layout.labels)
