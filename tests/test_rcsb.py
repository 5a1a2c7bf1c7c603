"""RCSB: the shipped priors denoise, the region constraint is exact on the bridge and in the SGM
ablation, every recipe step is switchable."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import make_batch
from PIL import Image

from cfbench.cli import main
from cfbench.errors import UserError
from cfbench.methods.rcsb import RCSB
from cfbench.results import quantize

# seconds, not minutes: 3 bridge steps; 3 SGM denoising steps at tau = 0.6
FAST = dict(steps=5, ig_steps=4, nfe=3)
SGM = dict(prior="sgm")


def run(task, ids, regions=None, **hparams):
    return RCSB(task, torch.device("cpu"), **{**FAST, **hparams}).generate(
        make_batch(task, ids, regions=regions)
    )


def test_the_bridge_inpaints_a_region_better_than_the_mean_colour(task):
    """The shipped bridge, unguided, fills a free-form hole closer to the hidden pixels than the
    image's mean colour does: it has learned the world, not noise."""
    from cfbench.components.i2sb_training import cell_masks, inpaint

    bridge = task.component("rcsb_bridge")
    x = task.load([f"{i:05d}" for i in range(4)]).images * 2 - 1
    gen = torch.Generator().manual_seed(0)
    masks = cell_masks(gen, 4, x.shape[-1])
    with torch.no_grad():
        out = inpaint(bridge, x, masks, gen, nfe=10)
    mean = x.mean((2, 3), keepdim=True).expand_as(x)
    err = lambda y: float(((y - x) ** 2 * masks).sum() / (masks.sum() * 3))  # noqa: E731
    assert err(out) < 0.7 * err(mean), (err(out), err(mean))


def test_prior_denoises_a_noised_synthetic_image(task):
    prior = task.component("diffusion_prior")
    x = task.load(["00000", "00001", "00002"]).images
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    for level in (200, 500):
        x_t = prior.noised(x, noise, torch.full((3,), level))
        # the unbiased noisy estimate
        noisy = ((x_t / prior.alphas_cumprod[level].sqrt() + 1) / 2).clamp(0, 1)
        with torch.no_grad():
            denoised = prior.denoise(x_t, level)[1]
        err_noisy = (noisy - x).pow(2).flatten(1).mean(1)
        err_denoised = (denoised - x).pow(2).flatten(1).mean(1)
        assert (err_denoised < 0.5 * err_noisy).all(), (level, err_denoised, err_noisy)


@pytest.mark.parametrize(
    "source,prior",
    [("ig", "bridge"), ("freeform", "sgm"), ("gt_object", "bridge"), ("user", "sgm")],
)
def test_outside_the_region_the_counterfactual_is_the_input(task, source, prior):
    ids = ["00000", "00001"]
    user = torch.zeros(2, 1, 64, 64)
    user[:, :, 16:48, 8:40] = 1
    regions = user if source == "user" else None
    cf = run(task, ids, regions=regions, region=source, a=0.2, prior=prior)
    x = task.load(ids).images
    outside = cf.masks == 0
    assert set(cf.masks.unique().tolist()) == {0.0, 1.0}
    assert torch.equal((cf.images - x).abs() * outside, torch.zeros_like(x))
    # ... and so it is in the written PNGs too (the runner quantises both the same way).
    assert torch.equal(quantize(cf.images) * outside, quantize(x) * outside)
    inside_change = ((cf.images - x).abs().sum(1, keepdim=True) * cf.masks).sum((1, 2, 3))
    assert (inside_change > 1.0).all()  # the region was actually edited
    if source == "user":
        assert torch.equal(cf.masks, user)


def _differs(a, b) -> float:
    return float((a.images - b.images).abs().max())


@pytest.mark.parametrize(
    "switch", [dict(tweedie=False), dict(adam=False), dict(truncation=False), dict(s=0.0)]
)
def test_each_sgm_recipe_step_can_be_turned_off_and_changes_the_result(task, switch):
    ids = ["00003"]
    assert _differs(run(task, ids, **SGM, **switch), run(task, ids, **SGM)) > 2 / 255


@pytest.mark.parametrize("switch", [dict(s=0.0), dict(classifier_input="minmax")])
def test_each_bridge_guidance_choice_changes_the_result(task, switch):
    ids = ["00003"]
    assert _differs(run(task, ids, **switch), run(task, ids)) > 2 / 255


def test_adaptive_normalisation_changes_the_unstabilised_step(task):
    ids = ["00003"]
    a = run(task, ids, **SGM, adam=False, adaptive_norm=True)
    b = run(task, ids, **SGM, adam=False, adaptive_norm=False)
    assert _differs(a, b) > 2 / 255


@pytest.mark.parametrize("prior", ["bridge", "sgm"])
def test_a_sample_does_not_depend_on_its_batch(task, prior):
    ids = ["00004", "00005", "00006"]
    together = run(task, ids, region="freeform", prior=prior)
    alone = run(task, ids[1:2], region="freeform", prior=prior)
    assert torch.allclose(together.images[1:2], alone.images, atol=1e-4)
    assert torch.equal(together.masks[1:2], alone.masks)


def test_bridge_guidance_flips_a_small_batch_and_counts_classifier_evaluations(task):
    ids = [f"{i:05d}" for i in range(4)]
    cf = run(task, ids, a=0.3, s=3.0, nfe=40)  # (at 10 steps none flips: guidance accumulates)
    with torch.no_grad():
        pred = task.classifier(quantize(cf.images)).argmax(1)
    assert (pred == make_batch(task, ids).target).sum() >= 3
    # IG path + prediction + one per bridge step
    assert cf.info["nfe"].tolist() == [FAST["ig_steps"] + 1 + 40] * 4
    assert cf.info["steps"].tolist() == [40] * 4


def test_sgm_guidance_flips_a_small_batch_and_counts_classifier_evaluations(task):
    ids = [f"{i:05d}" for i in range(4)]
    cf = run(task, ids, **SGM, a=0.3, s=1.5, steps=20)
    with torch.no_grad():
        pred = task.classifier(quantize(cf.images)).argmax(1)
    assert (pred == make_batch(task, ids).target).sum() >= 3
    # IG path + prediction + one per step
    assert cf.info["nfe"].tolist() == [FAST["ig_steps"] + 1 + 12] * 4
    assert cf.info["steps"].tolist() == [12] * 4


def test_missing_user_prior_and_regions_are_user_errors(tmp_path, monkeypatch, task):
    from cfbench.catalog import TASKS

    monkeypatch.delenv("CFBENCH_DIFFUSION_PRIOR", raising=False)
    with pytest.raises(UserError, match="CFBENCH_DIFFUSION_PRIOR"):
        TASKS.build("zebra_sorrel").component("diffusion_prior")
    monkeypatch.delenv("CFBENCH_RCSB_BRIDGE", raising=False)
    with pytest.raises(UserError, match="CFBENCH_RCSB_BRIDGE"):
        TASKS.build("zebra_sorrel").component("rcsb_bridge")
    monkeypatch.setenv("CFBENCH_DIFFUSION_PRIOR", str(tmp_path))
    with pytest.raises(UserError, match="unet"):
        TASKS.build("zebra_sorrel").component("diffusion_prior")
    with pytest.raises(UserError, match="--regions"):
        run(task, ["00000"], region="user")
    assert (
        main(
            [
                "run",
                "--task",
                "synth_cheetah_cougar",
                "--methods",
                "rcsb",
                "--n",
                "1",
                "--regions",
                str(tmp_path / "nope"),
                "--out",
                str(tmp_path / "run"),
            ]
        )
        == 2
    )


def test_cli_run_with_user_regions_keeps_everything_outside_them(tmp_path):
    regions_dir = tmp_path / "regions"
    regions_dir.mkdir()
    for i in range(2):
        m = np.zeros((64, 64), np.uint8)
        m[8 + 8 * i : 40, 16:48] = 255
        Image.fromarray(m).save(regions_dir / f"{i:05d}.png")
    out = tmp_path / "run"
    assert (
        main(
            [
                "run",
                "--task",
                "synth_cheetah_cougar",
                "--methods",
                "rcsb_c",
                "--n",
                "2",
                "--metrics",
                "FR",
                "--regions",
                str(regions_dir),
                "--out",
                str(out),
                "--set",
                "rcsb_c.nfe=4",
                "--set",
                "rcsb_c.ig_steps=8",
            ]
        )
        == 0
    )
    for i in range(2):
        name = f"{i:05d}.png"
        orig = np.asarray(Image.open(out / "images/original" / name)).astype(int)
        cf = np.asarray(Image.open(out / "images/rcsb_c" / name)).astype(int)
        mask = np.asarray(Image.open(out / "masks/rcsb_c" / name))
        assert np.array_equal(mask, np.asarray(Image.open(regions_dir / name)))
        assert np.abs(cf - orig)[mask == 0].max() == 0
        assert np.abs(cf - orig)[mask == 255].max() > 0
