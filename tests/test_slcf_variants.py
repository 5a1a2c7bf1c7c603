"""Every registered SLCF variant (paper Table 3 and "Ours + SAE") on the shipped synthetic
assets."""

import pytest
import torch
from conftest import in_float64, make_batch

from cfbench.catalog import METHODS

VARIANTS = ["slcf_lag1", "slcf_lig", "slcf_ig", "latent", "pixel", "pixel_ig", "slcf_sae"]
UNMASKED = {"latent", "pixel"}


def build(task, name, **overrides):
    return METHODS.build(name, task, torch.device("cpu"), **overrides)


@pytest.mark.parametrize("name", VARIANTS)
def test_variant_flips_a_small_batch_and_returns_its_mask(task, name):
    batch = make_batch(task, task.sample_ids(4))
    cf = build(task, name, ig_steps=16).generate(batch)
    with torch.no_grad():
        pred = task.classifier(cf.images).argmax(1)
    assert (pred == batch.target).float().mean() >= 3 / 4
    assert cf.images.shape == batch.images.shape and 0 <= cf.images.min() and cf.images.max() <= 1
    if name in UNMASKED:
        assert cf.masks is None
    else:
        assert cf.masks.shape == (4, 1, 64, 64) and (cf.masks == 0).any() and cf.masks.max() <= 1
    assert (cf.info["nfe"] >= cf.info["steps"]).all()


@pytest.mark.parametrize("name", ["slcf_lig", "pixel_ig", "slcf_sae"])
def test_variant_result_does_not_depend_on_its_batch(task, name):
    method = build(task, name, ig_steps=8, stage1_steps=5, stage2_steps=10)  # not converged: the
    ids = task.sample_ids(2)  # property holds anyway
    modules = [task.classifier, task.component("autoencoder")] + (
        [task.component("sae")] if name == "slcf_sae" else []
    )
    with in_float64(*modules):
        together = method.generate(make_batch(task, ids, dtype=torch.float64)).images
        alone = method.generate(make_batch(task, ids[1:], dtype=torch.float64)).images
    assert (alone[0] - together[1]).abs().max() <= 1e-4


def test_slcf_code_converts_the_released_units_and_stops_only_when_confident(task):
    import torch.nn.functional as F

    code = METHODS.build("slcf_code", task, torch.device("cpu"), stage2_steps=60)
    scale = code.ae.scale
    from cfbench.methods.slcf.params import latent_factor

    lr, noise, lambda_s, sigma = code.lr, code.noise, code.lambda_s, code.sigma
    grid = task.image_size // latent_factor(code.ae, task.image_size)
    assert (lr, noise, lambda_s, sigma) == pytest.approx(
        (0.1 * scale, 2.0 * scale, 0.1 / scale, 3.0 * grid / 64)
    )
    batch = make_batch(task, ["00000", "00001"])
    out = code.generate(batch)
    with torch.no_grad():
        p = F.softmax(task.classifier(out.images), 1).gather(1, batch.target[:, None]).squeeze(1)
    # the returned image is the unperturbed render, not re-checked: it flips, mostly confidently
    assert bool((out.info["converged"] <= (p > 0.5)).all())


def test_slcf_sae_code_weights_spatial_features_by_the_mask_as_the_released_pipeline(task):
    method = build(task, "slcf_sae_code", stage2_steps=40)
    batch = make_batch(task, ["00000", "00001"])
    x = batch.images
    # With an all-ones mask the weighted pooling is the plain penultimate features.
    with torch.no_grad():
        torch.testing.assert_close(method.pool(method.spatial(x)), method.features(x))
    # A mask on one corner of the latent grid weights only that corner of the spatial map.
    corner = torch.zeros(2, 1, 8, 8)
    corner[:, :, :4, :4] = 1
    seen = {}
    method.class_goal = lambda target, confidence, reference, feature_weights=None, **_: (
        seen.setdefault("weights", feature_weights)
    )
    method.masked_goal(batch.target, x, corner)
    w = seen["weights"]
    assert w.shape == (2, 1, 8, 8) and w.min() == 0 and w.max() == 1
    assert w[:, :, :3, :3].min() > 0.9 and w[:, :, 5:, 5:].max() < 0.1
    del method.class_goal
    out = method.generate(batch)  # the whole pipeline runs: stage 2 on masked features
    assert out.images.shape == x.shape and out.masks.shape == (2, 1, 64, 64)


@pytest.mark.parametrize("entry, counted", [("slcf", 2), ("slcf_code", 1)])
def test_lag_counts_the_stopping_steps_gradient_only_in_the_papers_reading(task, entry, counted):
    """Released code (slc/pipelines/latent_edit.py, stage 1): the prediction is checked and the
    loop breaks before ``loss.backward()``, so the gradient of the step at which stage 1 stops is
    not in LAG; the paper's sum over the steps taken includes it."""
    from cfbench.methods.slcf import PixelEditSpace

    method = METHODS.build(entry, task, torch.device("cpu"), lambda_s=0.0)
    calls = []

    def goal(x_cf, rows):  # loss = sum of pixels (gradient 1 everywhere); reached at step 2
        calls.append(1)
        return x_cf.flatten(1).sum(1), torch.full((len(rows),), len(calls) >= 2)

    x = torch.full((1, 3, 4, 4), 0.5)
    ones = torch.ones(1, 1, 4, 4)
    out = method.optimise(
        PixelEditSpace(x),
        goal,
        ones,
        torch.zeros_like(x),
        5,
        patience=1,
        noise=0.0,
        generators=None,
        stage=1,
    )
    assert int(out.steps[0]) == 2
    torch.testing.assert_close(out.grad_sum, torch.full_like(x, float(counted)))
