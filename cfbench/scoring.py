"""Scoring one batch: predictions before and after the edit and every per-sample metric.

The one place a batch is scored, used while a run generates and by ``cfbench rescore`` (which
reads the same images back from the run directory), so both compute the same columns the same way.
"""

from __future__ import annotations

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
    ctx = SampleContext(task, batch, samples, counterfactuals, before, after)
    scores = {}
    for metric in metrics.values():
        for column, values in metric.per_sample(ctx).items():
            scores[column] = values.detach().cpu().tolist()
    return predictions, scores
