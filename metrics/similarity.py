"""S^3: cosine similarity of SimSiam embeddings (encoder with projector, eval mode) of x and x_cf.

The task supplies the SimSiam network (real tasks: a ResNet-50 SimSiam checkpoint from a user path;
synthetic tasks: the shipped, project-trained one, which is a stand-in and is recorded as such).
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from cfbench.api.metric import Metric, SampleContext


def s3(embed: torch.nn.Module, x: torch.Tensor, x_cf: torch.Tensor) -> torch.Tensor:
    """(B,) cosine similarity of the embeddings; x and x_cf go through one forward pass together."""
    with torch.no_grad():
        e = embed(torch.cat([x, x_cf]))
    a, b = e.chunk(2)
    return F.cosine_similarity(a, b, dim=1)


class SimSiamSimilarity(Metric):
    name = "S3"
    higher_is_better = True
    tolerance = (0.02, 0.0)
    model = "simsiam"

    def per_sample(self, ctx: SampleContext):
        return {
            "S3": s3(self.task.component("simsiam"), ctx.batch.images, ctx.counterfactuals.images)
        }
