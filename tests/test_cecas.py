"""CECAS: the refinement leaves every pixel outside its region as it was, the spurious term and the
purification change the attack, ablations switch their piece off, and results do not depend on
the batch."""

from __future__ import annotations

import json

import numpy as np
import torch
from conftest import in_float64, make_batch, make_task
from PIL import Image

from cfbench.cli import main
from cfbench.components.classifier import background_reliance
from cfbench.methods.cecas import CECAS
from cfbench.tasks.synthetic import ANIMALS

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
    base = cecas(task).attack(x, target, make_batch(task, ["00000"]), 0.0)
    no_ls = cecas(task, spurious_weight=0.0).attack(x, target, make_batch(task, ["00000"]), 0.0)
    strong_ls = cecas(task, spurious_weight=5.0).attack(x, target, make_batch(task, ["00000"]), 0.0)
    plain = cecas(task, spurious_weight=0.0, purify=False).attack(
        x, target, make_batch(task, ["00000"]), 0.0
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
