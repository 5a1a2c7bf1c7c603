"""``cfbench regress``: compare a run's metrics.csv with a committed baseline; exit 1 on a
regression.

A baseline (``results/baselines/*.json``) holds the task, n and seed it was made with and, per
method, the value of every metric. A metric regresses when it moves in its bad direction by more
than its tolerance, max(abs, rel * |baseline|); moves in the good direction beyond the tolerance
are reported as improvements (update the baseline deliberately with ``--update``). A metric the
baseline has but the run lacks is a regression too. Tolerances: each metric's own (its class's
``tolerance``), overridden by the baseline file's ``tolerances`` and then by ``--tolerance
METRIC=0.05`` (absolute) or ``METRIC=10%`` (relative). A metric without a tolerance (wall-clock
``sec_per_cf``) is reported but only checked when a tolerance is given for it.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from cfbench.catalog import METRICS
from cfbench.errors import UserError
from cfbench.results import RunDir, write_json


@dataclass
class Check:
    method: str
    metric: str
    baseline: float
    current: float | None
    allowed: float | None
    status: str  # ok | REGRESSION | improved | missing | unchecked


def _higher_is_better(metric: str) -> bool:
    """Direction of a metric; costs (no direction) are better when lower."""
    return bool(METRICS.get(metric).load().higher_is_better) if metric in METRICS else False


def default_tolerances() -> dict[str, tuple[float, float] | None]:
    return {name: METRICS.get(name).load().tolerance for name in METRICS.names()}


def parse_tolerances(items: list[str]) -> dict[str, tuple[float, float]]:
    parsed = {}
    for item in items:
        metric, eq, value = item.partition("=")
        if not eq or metric not in METRICS:
            raise UserError(
                f"Malformed --tolerance '{item}': write METRIC=0.05 (absolute) or METRIC=10% "
                f"(relative), with METRIC one of {', '.join(METRICS.names())}."
            )
        try:
            parsed[metric] = (
                (0.0, float(value[:-1]) / 100) if value.endswith("%") else (float(value), 0.0)
            )
        except ValueError:
            raise UserError(
                f"--tolerance '{item}': '{value}' is not a number or a percentage."
            ) from None
    return parsed


def _finite(value) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def compare(metrics: pd.DataFrame, baseline: dict, tolerances: dict) -> list[Check]:
    checks = []
    for method, expected in baseline["methods"].items():
        rows = metrics[metrics["method"] == method]
        current_row = rows.iloc[0] if len(rows) else None
        for metric, base in expected.items():
            current = None if current_row is None else current_row.get(metric)
            current = float(current) if _finite(current) else None
            tol = tolerances.get(metric)
            if current is None:
                checks.append(Check(method, metric, base, None, None, "missing"))
                continue
            if tol is None:
                checks.append(Check(method, metric, base, current, None, "unchecked"))
                continue
            allowed = max(tol[0], tol[1] * abs(base))
            worse = (base - current) if _higher_is_better(metric) else (current - base)
            status = (
                "REGRESSION"
                if worse > allowed + 1e-12
                else "improved"
                if -worse > allowed + 1e-12
                else "ok"
            )
            checks.append(Check(method, metric, base, current, allowed, status))
    return checks


def _baseline_of(run: RunDir, metrics: pd.DataFrame, tolerances: dict) -> dict:
    info = run.read_run_json()
    methods = {}
    for _, row in metrics.iterrows():
        methods[row["method"]] = {
            m: float(row[m]) for m in METRICS.names() if m in row and _finite(row[m])
        }
    return {
        "task": info["task"],
        "n": info["n"],
        "seed": info["seed"],
        "methods": methods,
        "tolerances": {m: {"abs": a, "rel": r} for m, (a, r) in tolerances.items()},
        "source_run": str(run.root),
        "git_commit": info.get("git_commit"),
        "created": dt.datetime.now().isoformat(timespec="seconds"),
    }


def _read_baseline(path: Path) -> dict:
    if not path.exists():
        raise UserError(
            f"Baseline '{path}' does not exist. Create it from a run with "
            f"`cfbench regress RUN --baseline {path} --update`."
        )
    try:
        baseline = json.loads(path.read_text())
        for values in baseline["methods"].values():
            for value in values.values():
                float(value)
        for tol in baseline.get("tolerances", {}).values():
            float(tol["abs"]), float(tol["rel"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        raise UserError(
            f"Baseline '{path}' is not a cfbench baseline (a JSON file with a 'methods' object of "
            "numbers per method, and optional 'tolerances' with numeric abs/rel)."
        ) from None
    return baseline


def regress(run_path: str, baseline_path: str, tolerance_items: list[str], update: bool) -> int:
    run = RunDir.existing(run_path)
    metrics = run.read_metrics()
    path = Path(baseline_path)
    overrides = parse_tolerances(tolerance_items)
    if update:
        kept = {}
        if path.exists():
            kept = {
                m: (t["abs"], t["rel"])
                for m, t in _read_baseline(path).get("tolerances", {}).items()
            }
        write_json(path, _baseline_of(run, metrics, {**kept, **overrides}))
        print(f"Baseline {path} rewritten from {run.root}.")
        return 0
    baseline = _read_baseline(path)
    info = run.read_run_json()
    mismatch = [
        f"{k}: run {info.get(k)} vs baseline {baseline.get(k)}"
        for k in ("task", "n", "seed")
        if baseline.get(k) is not None and info.get(k) != baseline.get(k)
    ]
    if mismatch:
        raise UserError(
            f"Run '{run.root}' is not comparable with baseline '{path}' ({'; '.join(mismatch)}). "
            "Run the baseline's task, n and seed, or update the baseline deliberately with "
            "--update."
        )
    tolerances = {
        **default_tolerances(),
        **{m: (t["abs"], t["rel"]) for m, t in baseline.get("tolerances", {}).items()},
        **overrides,
    }
    checks = compare(metrics, baseline, tolerances)
    print(report(checks, run, path))
    failed = [c for c in checks if c.status in ("REGRESSION", "missing")]
    if failed:
        print(f"\n{len(failed)} regression(s) against {path}.")
        return 1
    print(f"\nNo regression against {path}.")
    return 0


def report(checks: list[Check], run: RunDir, path: Path) -> str:
    def num(v):
        return "–" if v is None else f"{v:.4g}"

    frame = pd.DataFrame(
        [
            {
                "method": c.method,
                "metric": c.metric,
                "baseline": num(c.baseline),
                "current": num(c.current),
                "diff": "–" if c.current is None else f"{c.current - c.baseline:+.4g}",
                "allowed": num(c.allowed),
                "status": c.status,
            }
            for c in checks
        ]
    )
    return f"{run.root} vs {path}\n\n" + frame.to_markdown(index=False)
