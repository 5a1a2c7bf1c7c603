"""The metric interface.

A metric may add per-sample columns while the run generates (``per_sample``: it sees the exact
tensors, after 8-bit quantisation) and turns a method's rows into the numbers of metrics.csv
(``summarize``). Per-sample metrics summarise to their mean with a bootstrap 95% half-width;
set-level metrics (FID) override ``summarize`` and read what they need from the run directory.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import pandas as pd
import torch

from cfbench.metrics.stats import bootstrap_half_width
from cfbench.types import Batch, Counterfactuals

if TYPE_CHECKING:
    from cfbench.results import RunDir
    from cfbench.tasks.base import Task, TaskSamples


@dataclass
class SampleContext:
    task: "Task"
    batch: Batch
    samples: "TaskSamples"
    counterfactuals: Counterfactuals   # images already quantised to 8 bits
    logits_before: torch.Tensor
    logits_after: torch.Tensor


class Metric:
    name: ClassVar[str]
    higher_is_better: ClassVar[bool | None] = None   # None: no "best" (cost columns are shown plainly)
    column: ClassVar[str | None] = None              # per-sample column summarised by the default

    def __init__(self, task: "Task", device: torch.device):
        self.task = task
        self.device = device

    def unavailable(self) -> str | None:
        """Why this metric cannot be computed on this task (None when it can)."""
        return None

    def per_sample(self, ctx: SampleContext) -> dict[str, torch.Tensor]:
        return {}

    def summarize(self, run: "RunDir", method: str, rows: pd.DataFrame) -> tuple[float, float | None]:
        """(value, 95% half-width) of this metric for one method."""
        values = rows[self.column or self.name].to_numpy(dtype=float)
        return float(np.mean(values)), bootstrap_half_width(values)

    def provenance(self) -> dict:
        """Which model or stand-in this metric used (recorded in run.json and table captions)."""
        return {}
