"""Scoring one batch: predictions before and after the edit and every per-sample metric.

The one place a batch is scored, used while a run generates and by ``cfbench rescore`` (which
reads the same images back from the run directory), so both compute the same columns the same way.
Every per-sample metric sees one sample at a time: network kernels round differently at different
batch sizes (1e-7 in float32), and a sample's numbers must not depend on which others share its
batch, so that a rescore, a resumed run and a torchrun rank all reproduce them exactly.
"""

from __future__ import annotations

import dataclasses

import torch

from cfbench.api.metric import Metric, SampleContext
from cfbench.api.task import Task, TaskSamples
from cfbench.api.types import Batch, Counterfactuals


def score_batch(
    task: Task,
    metrics: dict[str, Metric],
    batch: Batch,
    samples: TaskSamples,
    counterfactuals: Counterfactuals,
) -> tuple[dict[str, list], dict[str, list]]:
    """({pred_before, pred_after, flipped}, {per-sample metric column: values}) for a batch whose
    images and counterfactuals are already on the 8-bit grid."""
    with torch.no_grad():
        before, after = task.classifier(batch.images), task.classifier(counterfactuals.images)
    predictions = {
        "pred_before": before.argmax(1).tolist(),
        "pred_after": after.argmax(1).tolist(),
        "flipped": (after.argmax(1) == batch.target).tolist(),
    }
    scores: dict[str, list] = {}
    for i in range(len(batch)):
        one = SampleContext(
            task,
            _row(batch, i),
            _row(samples, i),
            _row(counterfactuals, i),
            before[i : i + 1],
            after[i : i + 1],
        )
        written = set()  # a column two metrics share (MNAC's and CD's oracle predictions): once
        for metric in metrics.values():
            for column, values in metric.per_sample(one).items():
                if column not in written:
                    written.add(column)
                    scores.setdefault(column, []).append(values.detach().cpu()[0].tolist())
    return predictions, scores


def _row(data, i: int):
    """Sample ``i`` of a Batch, TaskSamples or Counterfactuals, as a batch of one."""

    def pick(value):
        if isinstance(value, torch.Tensor) and value.dim() > 0:
            return value[i : i + 1]
        if isinstance(value, list):
            return value[i : i + 1]
        if isinstance(value, dict):
            return {k: pick(v) for k, v in value.items()}
        return value

    return dataclasses.replace(
        data, **{f.name: pick(getattr(data, f.name)) for f in dataclasses.fields(data)}
    )
