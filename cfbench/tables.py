"""Paper tables from one or more run directories, as LaTeX, Markdown or CSV.

Layouts follow the VCE papers: rows per task block, arrows in headers, best value bold and second
underlined per column (per task block). FR is shown as a percentage. Captions name the task, n,
seed, every stand-in model the numbers were computed with and every metric that was not computed.

- Table 1 (ImageNet layout): methods as rows; FID, sFID, S^3, COUT, FR.
- Table 2 (CelebA layout): FID, sFID, COUT, FR.
- Table 3 (SLCF mask ablation): rows Edit x Mask from the ablation methods present in the runs.
- Table 4 (localization): rows are attribution methods, from ``cfbench localize`` directories.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from cfbench.errors import UserError
from cfbench.metrics import METRICS
from cfbench.results import METRIC_COLUMNS, RunDir

PERCENT = {"FR", "GT_IN", "GT_SPUR"}
TABLE_ONLY_DIRECTIONS = {"AUROC": True}   # columns that are not run metrics (Table 4)

# SLCF Table 3: method -> (Edit, Mask), in the paper's row order.
ABLATION = {
    "pixel": ("Pixel", "–"), "pixel_ig": ("Pixel", "IG"),
    "latent": ("Latent", "–"), "slcf_ig": ("Latent", "IG"), "slcf_lig": ("Latent", "LIG"),
    "slcf_lag1": ("Latent", "LAG*"), "slcf": ("Latent", "LAG"), "slcf_sae": ("Latent", "LAG + SAE"),
}


@dataclass(frozen=True)
class Layout:
    title: str
    columns: tuple[str, ...]
    labels: tuple[str, ...] = ("method",)    # row-label columns after "task"
    localization: bool = False              # rows come from `cfbench localize`, not `cfbench run`


LAYOUTS = {
    1: Layout("Table 1 (ImageNet layout)", ("FID", "sFID", "S3", "COUT", "FR")),
    2: Layout("Table 2 (CelebA layout)", ("FID", "sFID", "COUT", "FR")),
    3: Layout("Table 3 (mask ablation)", ("FID", "sFID", "S3", "COUT", "FR", "GT_IN"), ("Edit", "Mask")),
    4: Layout("Table 4 (localization). PF: Quantus pixel-flipping AUC of the source-class attribution, "
              "divided by the number of steps (lower is better); AUROC: |attribution| against the "
              "ground-truth causal region (synthetic tasks only)", ("PF", "AUROC"), ("Attribution",),
              localization=True),
}
RESULTS = Layout("Results", tuple(METRIC_COLUMNS))


def direction(metric: str) -> bool | None:
    """True if higher is better, False if lower is better, None if neither (costs)."""
    if metric in TABLE_ONLY_DIRECTIONS:
        return TABLE_ONLY_DIRECTIONS[metric]
    if metric not in METRICS:
        return None
    return METRICS.get(metric).load().higher_is_better


def header(metric: str) -> str:
    arrow = {True: " ↑", False: " ↓", None: ""}[direction(metric)]
    return f"{metric}{' (%)' if metric in PERCENT else ''}{arrow}"


def load_runs(paths: list[str], localization: bool = False) -> tuple[pd.DataFrame, list[dict]]:
    runs = [RunDir.existing(p) for p in paths]
    if localization:
        from cfbench.localize import read_localization

        frames = [read_localization(r) for r in runs]
    else:
        frames = [r.read_metrics() for r in runs]
    return pd.concat(frames, ignore_index=True), [r.read_run_json() for r in runs]


def _describe(provenance) -> str:
    if isinstance(provenance, dict):
        return "; ".join(str(v) for v in provenance.values())
    return str(provenance)


def caption(infos: list[dict], title: str) -> str:
    parts = [f"{info['task']} (n={info['n']}, seed={info['seed']})" for info in infos]
    text = f"{title}. Tasks: {'; '.join(dict.fromkeys(parts))}."
    by_model: dict[str, list[str]] = {}
    for info in infos:
        for metric, provenance in info.get("metric_provenance", {}).items():
            if provenance:
                names = by_model.setdefault(_describe(provenance), [])
                names += [metric] if metric not in names else []
        for component, provenance in info.get("task_provenance", {}).items():
            if isinstance(provenance, str) and "stand-in" in provenance:
                by_model.setdefault(provenance, [component])
    if by_model:
        text += " Stand-in models: " + "; ".join(f"{', '.join(m)} with {d}" for d, m in sorted(by_model.items())) + "."
    unavailable = sorted({f"{k} ({v})" for info in infos for k, v in info.get("metrics_unavailable", {}).items()})
    if unavailable:
        text += " Not computed: " + "; ".join(unavailable) + "."
    return text


def _rank_marks(values: pd.Series, higher: bool | None) -> list[str]:
    """'best' / 'second' / '' per row, by the metric's direction."""
    marks = [""] * len(values)
    if higher is None:
        return marks
    ordered = sorted(set(values.dropna()), reverse=higher)
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


def ablation_rows(metrics: pd.DataFrame) -> pd.DataFrame:
    """Table 3's rows: the ablation methods present, labelled (Edit, Mask), in the paper's order."""
    rows = metrics[metrics["method"].isin(ABLATION)].copy()
    if rows.empty:
        raise UserError("Table 3 (mask ablation) needs runs of the ablation methods "
                        f"({', '.join(ABLATION)}); the given runs have none of them.")
    rows["Edit"] = rows["method"].map(lambda m: ABLATION[m][0])
    rows["Mask"] = rows["method"].map(lambda m: ABLATION[m][1])
    order = {m: i for i, m in enumerate(ABLATION)}
    rows["_order"] = rows["method"].map(order)
    tasks = {t: i for i, t in enumerate(dict.fromkeys(rows["task"]))}
    rows["_task"] = rows["task"].map(tasks)
    return rows.sort_values(["_task", "_order"]).drop(columns=["_order", "_task"])


def build_table(metrics: pd.DataFrame, layout: Layout, with_ci: bool):
    """(display frame, marks frame): strings per cell and 'best'/'second' marks per cell."""
    columns = [c for c in layout.columns if c in metrics and metrics[c].notna().any()]
    if not columns:
        raise UserError("None of this table's metrics were computed in the given runs. Re-run with "
                        "--metrics all, or choose another --table.")
    shown, marks = [], []
    for task, block in metrics.groupby("task", sort=False):
        block = block.reset_index(drop=True)
        cell_marks = {c: _rank_marks(block[c], direction(c)) for c in columns}
        for i, row in block.iterrows():
            shown.append({"task": task, **{label: row[label] for label in layout.labels},
                          **{header(c): _fmt(c, row[c], row.get(f"{c}_ci"), with_ci) for c in columns}})
            marks.append({header(c): cell_marks[c][i] for c in columns})
    return pd.DataFrame(shown), pd.DataFrame(marks)


def render(shown: pd.DataFrame, marks: pd.DataFrame, fmt: str, title: str, labels: tuple[str, ...]) -> str:
    if fmt == "csv":
        return shown.to_csv(index=False)
    if fmt == "markdown":
        decorated = shown.copy()
        style = {"best": "**{}**", "second": "<u>{}</u>", "": "{}"}
        for col in marks:
            decorated[col] = [style[m].format(v) for v, m in zip(shown[col], marks[col])]
        return f"{title}\n\n" + decorated.to_markdown(index=False) + "\n"
    return _latex(shown, marks, title, labels)


_TEX = {"%": r"\%", "_": r"\_", "&": r"\&", "#": r"\#", "±": r"$\pm$", "↑": r"$\uparrow$",
        "↓": r"$\downarrow$", "–": "--", "×": r"$\times$", "^": r"\^{}", "~": r"\textasciitilde{}",
        "$": r"\$", "{": r"\{", "}": r"\}", "\\": r"\textbackslash{}"}


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
    styler = frame.style.apply(lambda _: mark_frame.replace(
        {"best": "textbf:--rwrap;", "second": "underline:--rwrap;", "": ""}), axis=None)
    return styler.to_latex(caption=tex(title), hrules=True, position="t", position_float="centering",
                           column_format="l" * frame.index.nlevels + "c" * len(frame.columns),
                           multirow_align="t")


def table(paths: list[str], number: int | None, fmt: str, with_ci: bool) -> str:
    if number is not None and number not in LAYOUTS:
        raise UserError(f"There is no table {number}: choose --table 1, 2, 3 or 4, or omit --table.")
    layout = LAYOUTS[number] if number is not None else RESULTS
    metrics, infos = load_runs(paths, layout.localization)
    if number == 3:
        metrics = ablation_rows(metrics)
    shown, marks = build_table(metrics, layout, with_ci)
    return render(shown, marks, fmt, caption(infos, layout.title), layout.labels)
