"""CECAS: the refinement leaves every pixel outside its region as it was, the spurious term and the
purification change the attack, ablations switch their piece off, and results do not depend on
the batch."""

from __future__ import annotations

import json

import numpy as np
import torch
from conftest import in_float64, make_batch, make_task
from PIL import Image

from cfbench.catalog import METHODS
from cfbench.cli import main
from cfbench.components.classifier import background_reliance
from cfbench.methods.cecas import CECAS
from cfbench.tasks.worlds.animals import ANIMALS

FAST = dict(iterations=3, step_size=8 / 255)


def cecas(task, **hparams):
    return CECAS(task, torch.device("cpu"), **{**FAST, **hparams})


def test_outside_the_final_region_the_written_counterfactual_is_the_input(tmp_path):
    out = tmp_path / "run"
    assert (
        main(
            [
                "run",
                "--task",
                "synth_cheetah_cougar_shortcut",
                "--methods",
                "cecas",
                "--n",
                "3",
                "--metrics",
                "FR",
                "--out",
                str(out),
                "--set",
                "cecas.iterations=3",
                "--set",
                "cecas.step_size=0.03",
            ]
        )
        == 0
    )
    edited = 0
    for i in range(3):
        name = f"{i:05d}.png"
        orig = np.asarray(Image.open(out / "images/original" / name)).astype(int)
        cf = np.asarray(Image.open(out / "images/cecas" / name)).astype(int)
        mask = np.asarray(Image.open(out / "masks/cecas" / name))
        assert set(np.unique(mask)) <= {0, 255}
        assert np.abs(cf - orig)[mask == 0].max(initial=0) <= 1
        edited += int(np.abs(cf - orig)[mask == 255].max(initial=0) > 1)
    assert edited >= 2  # the region was actually refined
    recorded = json.loads((out / "run.json").read_text())["config"]["methods"]["cecas"]
    assert (
        None not in recorded.values() and recorded["iterations"] == 3 and recorded["gamma"] == 0.05
    )


def test_region_is_the_thresholded_pooled_change():
    task = make_task("synth_cheetah_cougar")
    method = cecas(task)
    x = torch.zeros(1, 3, 64, 64)
    changed = x.clone()
    changed[0, :, 30, 30] = 1.0  # one changed pixel, the maximum
    changed[0, 0, 10, 10] = 0.1  # 0.1 / 3 of the maximum: below gamma (0.05 here)
    region = method.region(x, changed)
    d = method.dilation_px
    assert d % 2 == 1 and d == 5  # 15 px of a 256-px image -> 3.75 -> odd 5 on 64 px
    assert region[0, 0, 30 - d // 2 : 30 + d // 2 + 1, 30 - d // 2 : 30 + d // 2 + 1].all()
    assert region.sum() == d * d


def test_spurious_term_and_purification_each_change_the_attack():
    task = make_task("synth_cheetah_cougar_shortcut")
    batch = make_batch(task, ["00000"])
    x, target = batch.images, batch.target
    base = cecas(task).attack(x, target, make_batch(task, ["00000"]), 0.0, mask_attack=False)
    no_ls = cecas(task, spurious_weight=0.0).attack(
        x, target, make_batch(task, ["00000"]), 0.0, mask_attack=False
    )
    strong_ls = cecas(task, spurious_weight=5.0).attack(
        x, target, make_batch(task, ["00000"]), 0.0, mask_attack=False
    )
    plain = cecas(task, spurious_weight=0.0, purify=False).attack(
        x, target, make_batch(task, ["00000"]), 0.0, mask_attack=False
    )
    assert not torch.equal(strong_ls, no_ls)
    assert not torch.equal(plain, no_ls)
    # sign steps, in range
    assert (base - x).abs().max() <= FAST["iterations"] * FAST["step_size"] + 1e-6


def test_pgd_preset_needs_no_prior_and_flips():
    task = make_task("synth_cheetah_cougar")
    ids = ["00000", "00001", "00002", "00003"]
    method = CECAS(task, torch.device("cpu"), spurious_weight=0.0, purify=False, refine=False)
    assert CECAS.requires(method.hparams) == ("classifier",)
    cf = method.generate(make_batch(task, ids))
    with torch.no_grad():
        pred = task.classifier(cf.images).argmax(1)
    assert (pred == make_batch(task, ids).target).float().mean() >= 0.75


def test_a_sample_does_not_depend_on_its_batch():
    task = make_task("synth_cheetah_cougar_shortcut")
    method = cecas(task)
    with in_float64(
        task.classifier, task.component("diffusion_prior"), task.component("spurious_vae")
    ):
        alone = method.generate(make_batch(task, ["00001"], dtype=torch.float64))
        together = method.generate(make_batch(task, ["00000", "00001"], dtype=torch.float64))
    assert torch.allclose(alone.images[0], together.images[1], atol=1e-9)
    assert torch.equal(alone.masks[0], together.masks[1])


def test_the_shortcut_classifier_reads_the_background_and_the_unbiased_one_does_not():
    shortcut = make_task("synth_zebra_sorrel_shortcut")
    assert shortcut.components["classifier"] == "asset:shortcut_classifier"
    # as recorded in the manifest
    assert shortcut.settings()["background_reliance"]["swap_drop"] >= 0.2
    measured = background_reliance(shortcut.classifier, ANIMALS, n=240)
    unbiased = background_reliance(make_task("synth_zebra_sorrel").classifier, ANIMALS, n=240)
    assert measured["swap_drop"] >= 0.15 and abs(unbiased["swap_drop"]) <= 0.05


def test_the_respaced_grid_is_guided_diffusions():
    """guided_diffusion/respace.py, ``space_timesteps(1000, "25")``: frac_stride = 999 / 24 and
    ``round(cur_idx)`` of 0, 41.625, 83.25, ... (ACE imagenet-attack.sh ``--timestep_respacing 25
    --sampling_time_fraction 0.2``: the last five steps are 166, 125, 83, 42, 0)."""
    from cfbench.methods.cecas import space_timesteps

    assert space_timesteps(1000, 25)[:5] == [0, 42, 83, 125, 166]
    assert space_timesteps(1000, 25)[-1] == 999 and len(space_timesteps(500, 50)) == 50
    method = METHODS.build("cecas", make_task(), torch.device("cpu"))
    assert method.timesteps == [166, 125, 83, 42, 0]


def test_a_respaced_step_is_the_posterior_step_of_the_respaced_process():
    """guided-diffusion ``p_sample`` (clip_denoised, fixed posterior variance where the model has no
    learned one) on the respaced betas equals diffusers' DDPMScheduler given the same timesteps, an
    independent implementation of the same step."""
    from diffusers import DDPMScheduler

    from cfbench.methods.cecas import RespacedSampler

    prior = make_task().component("diffusion_prior")
    sampler = RespacedSampler(prior, 25)
    reference = DDPMScheduler.from_config(
        prior.scheduler.config, clip_sample=True, variance_type="fixed_small"
    )
    reference.set_timesteps(timesteps=sampler.kept[::-1])
    x_t = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    for t in (166, 42):
        noise = torch.randn(x_t.shape, generator=torch.Generator().manual_seed(t))
        ours = sampler.step(x_t, t, noise, stochastic=True)
        with torch.no_grad():
            eps = prior.epsilon(x_t, torch.full((2,), t))
        theirs = reference.step(eps, t, x_t, generator=torch.Generator().manual_seed(t)).prev_sample
        torch.testing.assert_close(ours.float(), theirs, rtol=1e-4, atol=1e-4)


def test_the_mask_attack_is_eq_7_without_the_spurious_term():
    """CECAS Eq. 7: x'' = argmin L(F(x''); y') + lambda ||x'' - x||_1, no L_S (the earlier reading
    kept it: ``mask_attack_ls``)."""
    task = make_task("synth_cheetah_cougar_shortcut")
    batch = make_batch(task, ["00000"])
    calls = {}
    for keep in (False, True):
        method = METHODS.build(
            "cecas", task, torch.device("cpu"), iterations=2, purify=False, mask_attack_ls=keep
        )
        counted = method.vae.spurious_logits
        calls[keep] = 0

        def counting(r, keep=keep, counted=counted):
            calls[keep] += 1
            return counted(r)

        method.vae.spurious_logits = counting
        method.attack(batch.images, batch.target, batch, l1=0.01, mask_attack=True)
        method.vae.spurious_logits = counted
    assert calls == {False: 1, True: 3}  # the reference only, or the reference and 2 steps


def test_each_task_takes_its_row_of_table_5():
    """Table 5: L_S weight cougar-cheetah 0.02, sorrel-zebra 0.03, Persian-Egyptian 0.04; CelebA
    50 PGD iterations, gamma 0.1, L_S 0.2 (smile) and 0.5 (age); ACE celeba-attack.sh
    ``--timestep_respacing 50 --sampling_time_fraction 0.1``."""
    weights = {
        t: METHODS.params("cecas", make_task(t)).spurious_weight
        for t in ("synth_cheetah_cougar", "synth_zebra_sorrel", "synth_egyptian_persian")
    }
    assert weights == {
        "synth_cheetah_cougar": 0.02,
        "synth_zebra_sorrel": 0.03,
        "synth_egyptian_persian": 0.04,
    }
    from cfbench.catalog import TASKS

    smile, age = (METHODS.params("cecas", TASKS.build(t)) for t in ("synth_smile", "synth_age"))
    assert (smile.iterations, smile.gamma, smile.spurious_weight) == (50, 0.1, 0.2)
    assert (smile.respacing, smile.time_fraction, age.spurious_weight) == (50, 0.1, 0.5)


def test_the_shortcut_steps_along_the_gradient_at_the_purified_image():
    """ACE's ``ClassifierDiffusionShortcut``: purify without a graph, differentiate the loss at the
    purified image, divide by sqrt(alpha_bar(t*)) and add the distance's own gradient."""
    task = make_task("synth_cheetah_cougar_shortcut")
    method = cecas(task, iterations=1, spurious_weight=0.0, gradient="shortcut")
    x = make_batch(task, ["00000", "00001"]).images
    target = make_batch(task, ["00000", "00001"]).target
    ours = method.attack(x, target, make_batch(task, ["00000", "00001"]), 0.01, mask_attack=False)
    with torch.no_grad():
        purified = method.purify(x, make_batch(task, ["00000", "00001"]))
    purified.requires_grad_(True)
    loss = torch.nn.functional.cross_entropy(task.classifier(purified), target, reduction="sum")
    (grad,) = torch.autograd.grad(loss, purified)
    expected = (x - FAST["step_size"] * grad.sign()).clamp(0, 1)  # x' = x: no l1 gradient yet
    torch.testing.assert_close(ours, expected)
    exact = cecas(task, iterations=1, spurious_weight=0.0)
    assert not torch.equal(
        exact.attack(x, target, make_batch(task, ["00000", "00001"]), 0.01, mask_attack=False), ours
    )
