"""S^3 with the shipped SimSiam: 1 for an image with itself, and lower for a heavier edit."""

import torch

from cfbench.metrics.similarity import SimSiamSimilarity, s3


def test_s3_of_an_image_with_itself_is_one(task):
    x = task.load([f"{i:05d}" for i in range(6)]).images
    assert torch.allclose(s3(task.component("simsiam"), x, x), torch.ones(6), atol=1e-5)


def test_s3_drops_with_the_size_of_the_edit(task):
    x = task.load([f"{i:05d}" for i in range(8)]).images
    g = torch.Generator().manual_seed(0)
    noise = torch.rand(x.shape, generator=g) - 0.5
    light, heavy = (
        s3(task.component("simsiam"), x, (x + 0.05 * noise).clamp(0, 1)),
        s3(task.component("simsiam"), x, (x + noise).clamp(0, 1)),
    )
    assert (light > heavy).float().mean() >= 0.75 and light.mean() > 0.9


def test_s3_names_the_stand_in(task):
    metric = SimSiamSimilarity(task, torch.device("cpu"))
    assert metric.unavailable() is None and metric.provenance()["stand_in"]
    assert "stand-in" in metric.provenance()["model"]
