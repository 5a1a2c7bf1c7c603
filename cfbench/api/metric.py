"""The metric interface, and every fact about a metric in one place: the metric's own class.

A metric may add per-sample columns while the run generates (``per_sample``: it sees the exact
tensors, after 8-bit quantisation) and turns a method's rows into the numbers of metrics.csv
(``summarize``, on the rows the run's protocol selects for it). A metric declares the options a
protocol may set for it (``options``: name -> ``Option``; every metric has ``rows``) and checks
the values it is given, so a protocol names its rules per metric and no other module knows them.
Per-sample metrics summarise to their mean with a bootstrap 95% half-width; set-level metrics
(FID) override ``summarize`` and read what they need from the run directory (its PNGs), so a
finished or sharded run's set-level numbers are computed from the directory alone.

The class attributes are the metric's facts, read by metrics.csv (its column), tables (label,
direction, percent, decimals, what the interval means) and ``cfbench regress`` (tolerance):
registering a metric is one line in ``cfbench/catalog.py`` and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd
import torch

from cfbench.api.types import Batch, Counterfactuals
from cfbench.errors import UserError
from cfbench.stats import bootstrap_half_width

if TYPE_CHECKING:
    from cfbench.api.task import Task, TaskSamples
    from cfbench.results import RunDir


@dataclass
class SampleContext:
    task: Task
    batch: Batch
    samples: TaskSamples
    counterfactuals: Counterfactuals  # images already quantised to 8 bits
    logits_before: torch.Tensor
    logits_after: torch.Tensor


@dataclass(frozen=True)
class Option:
    """A protocol option a metric understands: its default, and the values it accepts (one of
    ``choices``, or any value of type ``kind``)."""

    default: Any
    choices: tuple = ()
    kind: type | tuple[type, ...] | None = None
    doc: str = ""

    def check(self, metric: str, name: str, value) -> None:
        ok = value in self.choices or (self.kind is not None and isinstance(value, self.kind))
        if not ok:
            accepted = list(self.choices) + ([self.kind] if self.kind is not None else [])
            raise ValueError(f"{metric}: option {name}={value!r} is not one of {accepted}")


ROWS = Option(
    "all",
    ("all", "correct", "flipped"),
    doc="samples counted: all, originals classified right, or successful counterfactuals",
)

INTERVALS = {
    "bootstrap": "95% bootstrap half-width over samples",
    "splits": "half the 2.5-97.5 percentile range over split repetitions",
    "jackknife": "jackknife standard error over the counterfactuals",
}


class Metric:
    name: ClassVar[str]  # column in metrics.csv (the registry key)
    label: ClassVar[str | None] = None  # table header (default: name)
    higher_is_better: ClassVar[bool | None] = (
        None  # None: no "best" (cost columns are shown plainly)
    )
    percent: ClassVar[bool] = False  # a fraction in [0, 1] that tables show as %
    decimals: ClassVar[int] = 3  # digits tables show (after the percent scaling)
    tolerance: ClassVar[tuple[float, float] | None] = (
        None  # regress: (absolute, relative); None: report only
    )
    level: ClassVar[str] = "sample"  # "sample": a mean over samples; "set": over the set
    interval: ClassVar[str | None] = (
        "bootstrap"  # what <name>_ci holds (a key of INTERVALS), or None
    )
    column: ClassVar[str | None] = None  # per-sample column summarised by the default
    model: ClassVar[str | None] = None  # the task component (role) the metric computes with
    options: ClassVar[dict[str, Option]] = {}  # what a protocol may set, besides ``rows``
    # a set-level value from feature covariances: below ``feature_dims`` samples (run.json's
    # metric provenance) it is biased, and tables mark it rather than rank it
    needs_samples_over_dims: ClassVar[bool] = False

    def __init__(self, task: Task, device: torch.device, options: dict | None = None):
        self.task = task
        self.device = device
        # the protocol's settings for this metric (``--protocol``), checked, defaults filled in
        self.rules = self.resolve_options(options or {})
        self.notes: list[str] = []  # warnings about a summary (printed and kept in run.json)

    @classmethod
    def resolve_options(cls, given: dict) -> dict[str, Any]:
        declared = {"rows": ROWS, **cls.options}
        if unknown := sorted(set(given) - set(declared)):
            raise ValueError(f"{cls.name} has no protocol option {', '.join(unknown)}")
        for key, value in given.items():
            declared[key].check(cls.name, key, value)
        return {key: given.get(key, option.default) for key, option in declared.items()}

    def unavailable(self) -> str | None:
        """Why this metric cannot be computed on this task (None when it can): by default, that
        the task cannot provide its ``model``."""
        if self.model is None:
            return None
        try:
            self.task.component(self.model)
        except UserError as err:
            return str(err)
        return None

    def per_sample(self, ctx: SampleContext) -> dict[str, torch.Tensor]:
        return {}

    def summarize(
        self, run: RunDir, method: str, rows: pd.DataFrame
    ) -> tuple[float | None, float | None]:
        """(value, interval half-width) of this metric for one method's ``rows``."""
        values = self.values(rows)
        values = values[np.isfinite(values)]
        if len(values) == 0:
            return None, None
        return float(np.mean(values)), bootstrap_half_width(values) if self.interval else None

    @staticmethod
    def samples_used(n: int) -> int:
        """How many samples per feature set a value over ``n`` rows rests on."""
        return n

    def values(self, rows: pd.DataFrame) -> np.ndarray:
        """The per-sample numbers the default summary averages (its column)."""
        return rows[self.column or self.name].to_numpy(dtype=float)

    def figure(self, samples: pd.DataFrame, methods: list[str]):
        """(file name, matplotlib figure) this metric draws for a finished run (its per-sample
        ``samples``), or None; written into the run's ``figures/``."""
        return None

    def provenance(self) -> dict:
        """Which model or stand-in this metric used (recorded in run.json and table captions)."""
        if self.model is None:
            return {}
        found = self.task.provenance([self.model])[self.model]
        return {"model": found["description"], "stand_in": found["stand_in"]}
