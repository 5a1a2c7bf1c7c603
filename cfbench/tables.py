"""Paper tables from one or more run directories, as LaTeX, Markdown or CSV.

Layouts follow the VCE papers: methods as rows, per-task blocks, arrows in headers, best value
bold and second underlined per column (per task block). FR is shown as a percentage. Captions
name the task, n, seed and every stand-in model the numbers were computed with.
"""
from __future__ import annotations

import math

import pandas as pd

from cfbench.errors import UserError
from cfbench.metrics import METRICS
from cfbench.results import METRIC_COLUMNS, RunDir

LAYOUTS = {  # table number -> (title, columns)
    1: ("ImageNet layout", ["FID", "sFID", "S3", "COUT", "FR"]),
    2: ("CelebA layout", ["FID", "sFID", "COUT", "FR"]),
}
PERCENT = {"FR", "GT_IN", "GT_SPUR"}


def direction(metric: str) -> bool | None:
    """True if higher is better, False if lower is better, None if neither (costs)."""
    if metric not in METRICS:
        return None
    return METRICS.get(metric).load().higher_is_better


def header(metric: str) -> str:
    arrow = {True: " ↑", False: " ↓", None: ""}[direction(metric)]
    return f"{metric}{' (%)' if metric in PERCENT else ''}{arrow}"


def load_runs(paths: list[str]) -> tuple[pd.DataFrame, list[dict]]:
    runs = [RunDir.existing(p) for p in paths]
    frames = [r.read_metrics() for r in runs]
    return pd.concat(frames, ignore_index=True), [r.read_run_json() for r in runs]


def caption(infos: list[dict], title: str) -> str:
    parts = []
    for info in infos:
        parts.append(f"{info['task']} (n={info['n']}, seed={info['seed']})")
    stand_ins = sorted({f"{k}: {v}" for info in infos
                        for k, v in {**info.get("metric_provenance", {})}.items() if v})
    text = f"{title}. Tasks: {'; '.join(dict.fromkeys(parts))}."
    if stand_ins:
        text += " Stand-in models: " + "; ".join(stand_ins) + "."
    unavailable = sorted({f"{k} ({v})" for info in infos for k, v in info.get("metrics_unavailable", {}).items()})
    if unavailable:
        text += " Not computed: " + "; ".join(unavailable) + "."
    return text


def _rank_marks(values: pd.Series, higher: bool | None) -> list[str]:
    """'best' / 'second' / '' per row, by the metric's direction."""
    marks = [""] * len(values)
    if higher is None:
        return marks
    finite = values.dropna()
    ordered = sorted(set(finite), reverse=higher)
    for i, v in enumerate(values):
        if pd.notna(v) and ordered and v == ordered[0]:
            marks[i] = "best"
        elif pd.notna(v) and len(ordered) > 1 and v == ordered[1]:
            marks[i] = "second"
    return marks


def _fmt(metric: str, value, ci, with_ci: bool) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    scale, digits = (100, 1) if metric in PERCENT else (1, 3)
    text = f"{value * scale:.{digits}f}"
    if with_ci and ci is not None and not (isinstance(ci, float) and math.isnan(ci)):
        text += f" ± {ci * scale:.{digits}f}"
    return text


def build_table(metrics: pd.DataFrame, columns: list[str], with_ci: bool, row_label: str = "method"):
    """(display frame, marks frame): strings per cell and 'best'/'second' marks per cell."""
    columns = [c for c in columns if c in metrics and metrics[c].notna().any()]
    if not columns:
        raise UserError("None of this table's metrics were computed in the given runs. Re-run with "
                        "--metrics all, or choose another --table.")
    shown, marks = [], []
    for task, block in metrics.groupby("task", sort=False):
        block = block.reset_index(drop=True)
        cell_marks = {c: _rank_marks(block[c], direction(c)) for c in columns}
        for i, row in block.iterrows():
            shown.append({"task": task, row_label: row[row_label],
                          **{header(c): _fmt(c, row[c], row.get(f"{c}_ci"), with_ci) for c in columns}})
            marks.append({header(c): cell_marks[c][i] for c in columns})
    return pd.DataFrame(shown), pd.DataFrame(marks)


def render(shown: pd.DataFrame, marks: pd.DataFrame, fmt: str, title: str) -> str:
    if fmt == "csv":
        return shown.to_csv(index=False)
    decorated = shown.copy()
    if fmt == "markdown":
        style = {"best": "**{}**", "second": "<u>{}</u>", "": "{}"}
        for col in marks:
            decorated[col] = [style[m].format(v) for v, m in zip(shown[col], marks[col])]
        return f"{title}\n\n" + decorated.to_markdown(index=False) + "\n"
    return _latex(shown, marks, title)


def _latex(shown: pd.DataFrame, marks: pd.DataFrame, title: str) -> str:
    """LaTeX through pandas' Styler: bold best, underline second, booktabs rules."""
    frame = shown.set_index(["task", shown.columns[1]])
    frame.index.names = [None, None]
    escape = {"%": r"\%", "_": r"\_", "±": r"$\pm$", "↑": r"$\uparrow$", "↓": r"$\downarrow$", "–": "--"}

    def tex(text: str) -> str:
        for k, v in escape.items():
            text = text.replace(k, v)
        return text

    frame = frame.map(tex)
    frame.columns = [tex(c) for c in frame.columns]
    frame.index = frame.index.map(lambda t: tuple(tex(str(x)) for x in t))
    mark_frame = marks.copy()
    mark_frame.columns = frame.columns
    mark_frame.index = frame.index
    styler = frame.style.apply(lambda _: mark_frame.replace(
        {"best": "textbf:--rwrap;", "second": "underline:--rwrap;", "": ""}), axis=None)
    return styler.to_latex(caption=tex(title), hrules=True, position="t", position_float="centering",
                           column_format="ll" + "c" * len(frame.columns), multirow_align="t")


def table(paths: list[str], number: int | None, fmt: str, with_ci: bool) -> str:
    metrics, infos = load_runs(paths)
    if number is None:
        title, columns = "Results", METRIC_COLUMNS
    elif number in LAYOUTS:
        title, columns = LAYOUTS[number]
    else:
        raise UserError(f"Table {number} is not available yet: choose --table 1 or 2, or omit --table.")
    shown, marks = build_table(metrics, columns, with_ci)
    return render(shown, marks, fmt, caption(infos, title))
