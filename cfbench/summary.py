"""From a run's per-sample rows to metrics.csv: one row per method, each metric over the rows its
protocol selects, with each run-level fit's cost spread over the samples it served. Used when a run
finishes and by ``cfbench rescore``."""

from __future__ import annotations

import pandas as pd

from cfbench.api.metric import Metric
from cfbench.catalog import METRICS
from cfbench.results import RunDir


def metric_names(spec: str) -> list[str]:
    return METRICS.names() if spec.strip() == "all" else METRICS.parse_list(spec)


def build_metrics(names: list[str], task, device, protocol) -> dict[str, Metric]:
    """Each named metric for ``task``, with the options ``protocol`` sets for it."""
    return {
        name: METRICS.build(name, task, device, options=protocol.options(name)) for name in names
    }


def summarize_methods(
    run: RunDir,
    task_name: str,
    methods: list[str],
    samples: pd.DataFrame,
    metrics: dict[str, Metric],
    protocol,
) -> tuple[list[dict], list[str]]:
    """metrics.csv rows (one per method; each metric over the rows its protocol selects) and the
    metrics' warnings."""
    table = []
    for name in methods:
        rows = samples[samples["method"] == name]
        record = {"task": task_name, "method": name, "n": len(rows), "protocol": protocol.name}
        for col in METRICS.names():
            value, ci = (
                metrics[col].summarize(run, name, protocol.select(col, rows))
                if col in metrics
                else (None, None)
            )
            record[col], record[f"{col}_ci"] = value, ci
        table.append(record)
    return table, sorted({note for m in metrics.values() for note in m.notes})


def amortise_fits(samples: pd.DataFrame, method_provenance: dict) -> pd.DataFrame:
    """Columns ``fit_nfe`` and ``fit_seconds``: each run-level fit's cost (a global method's
    direction) divided over the samples of the class it edits, so that per-sample costs include it
    and do not depend on how the run was split."""
    samples = samples.assign(fit_nfe=0.0, fit_seconds=0.0)
    for method, provenance in method_provenance.items():
        for source, cost in provenance.get("fit", {}).get("amortised", {}).items():
            rows = (samples["method"] == method) & (samples["source"] == int(source))
            if rows.any():
                samples.loc[rows, "fit_nfe"] = cost["nfe"] / rows.sum()
                samples.loc[rows, "fit_seconds"] = cost["seconds"] / rows.sum()
    return samples
