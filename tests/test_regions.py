"""Region extraction for region-constrained methods: IG cells, free-form, ground truth, user
masks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from cfbench import seeding, user_regions
from cfbench.api.types import Batch
from cfbench.errors import UserError
from cfbench.methods.toolkit import regions


def test_cell_size_scales_from_the_papers_256_pixels():
    assert regions.scaled_cell(4, 256) == 4
    assert regions.scaled_cell(4, 64) == 1
    assert regions.scaled_cell(16, 64) == 4
    assert regions.scaled_cell(4, 512) == 8


def test_top_cells_picks_the_known_hot_cells_and_covers_the_fraction():
    attribution = torch.rand(1, 1, 64, 64) * 0.01
    hot = [(0, 0), (3, 5), (7, 7), (5, 1)]  # 8x8 cells, in order of heat
    for rank, (i, j) in enumerate(hot):
        attribution[0, 0, i * 8 : (i + 1) * 8, j * 8 : (j + 1) * 8] += 10 - rank
    for k in (1, 2, 4):
        region = regions.top_cells(attribution, a=k / 64, cell=8)
        expected = torch.zeros(1, 1, 64, 64)
        for i, j in hot[:k]:
            expected[0, 0, i * 8 : (i + 1) * 8, j * 8 : (j + 1) * 8] = 1
        assert torch.equal(region, expected)
        assert region.mean().item() == pytest.approx(k / 64)


def test_top_cells_ranks_cells_by_their_total_not_their_peak():
    attribution = torch.zeros(1, 1, 8, 8)
    attribution[0, 0, 0, 0] = 5.0  # one very hot pixel in cell (0, 0)
    attribution[0, 0, 4:8, 4:8] = 1.0  # a uniformly warm cell (1, 1): total 16
    region = regions.top_cells(attribution, a=0.25, cell=4)
    assert region[0, 0, 4:8, 4:8].eq(1).all() and region.sum() == 16


@pytest.mark.parametrize("a", [0.1, 0.2, 0.3])
def test_top_cells_area_matches_a_on_random_maps(a):
    region = regions.top_cells(torch.rand(3, 1, 64, 64), a=a, cell=regions.scaled_cell(4, 64))
    assert set(region.unique().tolist()) <= {0.0, 1.0}
    assert torch.allclose(region.mean((1, 2, 3)), torch.full((3,), a), atol=1 / 4096)


def test_ig_regions_cover_a_and_count_classifier_evaluations(task):
    samples = task.load([f"{i:05d}" for i in range(2)])
    batch = Batch(
        samples.images, samples.labels, task.target_of(samples.labels), samples.sample_ids
    )
    region, nfe = regions.extract(
        "ig",
        batch,
        task,
        task.classifier,
        a=0.2,
        c=4,
        ig_steps=8,
        freeform_area=(0.1, 0.2),
        method="t",
    )
    assert torch.allclose(region.mean((1, 2, 3)), torch.full((2,), 0.2), atol=1 / 4096)
    assert nfe.tolist() == [9, 9]
    # The chosen pixels carry more attribution than the rest (it is a top-k selection).
    attribution, _ = regions.integrated_gradients(task.classifier, samples.images, 8)
    inside = (attribution * region).sum((1, 2, 3)) / region.sum((1, 2, 3))
    outside = (attribution * (1 - region)).sum((1, 2, 3)) / (1 - region).sum((1, 2, 3))
    assert (inside > 3 * outside).all()


@pytest.mark.parametrize("lo,hi", [(0.1, 0.2), (0.2, 0.3)])
def test_freeform_masks_lie_in_the_area_range_and_follow_the_sample_seed(lo, hi):
    ids = [f"{i:05d}" for i in range(12)]
    masks = regions.freeform(seeding.generators_for(0, ids), 64, lo, hi)
    share = masks.mean((1, 2, 3))
    assert (share >= lo).all() and (share <= hi).all()
    assert torch.equal(masks, regions.freeform(seeding.generators_for(0, ids), 64, lo, hi))
    assert not torch.equal(masks, regions.freeform(seeding.generators_for(1, ids), 64, lo, hi))


def test_freeform_rejects_an_impossible_range():
    with pytest.raises(UserError):
        regions.freeform(seeding.generators_for(0, ["a"]), 64, 0.3, 0.2)


def test_ground_truth_object_regions(task):
    ids = ["00000", "00001"]
    batch = Batch(*(lambda s: (s.images, s.labels, task.target_of(s.labels), ids))(task.load(ids)))
    region, nfe = regions.extract(
        "gt_object",
        batch,
        task,
        task.classifier,
        a=0.1,
        c=4,
        ig_steps=8,
        freeform_area=(0.1, 0.2),
        method="t",
    )
    assert torch.equal(region, task.load(ids).gt_masks["object"])
    assert nfe.tolist() == [0, 0]


def test_user_regions_load_resize_and_take_priority_under_auto(tmp_path, task):
    full = np.zeros((64, 64), np.uint8)
    full[10:30, 20:40] = 255
    Image.fromarray(full).save(tmp_path / "00000.png")
    half = np.zeros((32, 32, 3), np.uint8)  # colour and half resolution
    half[0:8, 0:8] = 255
    Image.fromarray(half).save(tmp_path / "00001.png")
    masks = user_regions.load_user_regions(tmp_path, ["00000", "00001"], (64, 64))
    assert masks.shape == (2, 1, 64, 64)
    assert masks[0].sum() == 400 and masks[0, 0, 10:30, 20:40].eq(1).all()
    assert masks[1].sum() == 256 and masks[1, 0, :16, :16].eq(1).all()

    samples = task.load(["00000", "00001"])
    batch = Batch(
        samples.images,
        samples.labels,
        task.target_of(samples.labels),
        samples.sample_ids,
        regions=masks,
    )
    region, _ = regions.extract(
        "auto",
        batch,
        task,
        task.classifier,
        a=0.1,
        c=4,
        ig_steps=8,
        freeform_area=(0.1, 0.2),
        method="t",
    )
    assert torch.equal(region, masks)
    with pytest.raises(UserError, match="00002"):
        user_regions.load_user_regions(tmp_path, ["00000", "00002"], (64, 64))
    batch.regions = None
    with pytest.raises(UserError, match="--regions"):
        regions.extract(
            "user",
            batch,
            task,
            task.classifier,
            a=0.1,
            c=4,
            ig_steps=8,
            freeform_area=(0.1, 0.2),
            method="t",
        )
