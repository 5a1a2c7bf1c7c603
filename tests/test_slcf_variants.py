"""Every registered SLCF variant (paper Table 3 and "Ours + SAE") on the shipped synthetic assets."""
import pytest
import torch

from cfbench.methods import METHODS
from conftest import in_float64, make_batch

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
    method = build(task, name, ig_steps=8, stage1_steps=5, stage2_steps=10)   # not converged: the
    ids = task.sample_ids(2)                                                   # property holds anyway
    modules = [task.classifier, task.component("autoencoder")] + ([task.component("sae")] if name == "slcf_sae" else [])
    with in_float64(*modules):
        together = method.generate(make_batch(task, ids, dtype=torch.float64)).images
        alone = method.generate(make_batch(task, ids[1:], dtype=torch.float64)).images
    assert (alone[0] - together[1]).abs().max() <= 1e-4
