import pytest
import torch
from conftest import in_float64, make_batch

from cfbench.methods.slcf import SLCF


def test_slcf_flips_a_small_batch_and_returns_its_mask(task):
    method = SLCF(task, torch.device("cpu"), **SLCF.Params.defaults())
    batch = make_batch(task, task.sample_ids(6))
    cf = method.generate(batch)
    assert cf.images.shape == batch.images.shape and 0 <= cf.images.min() and cf.images.max() <= 1
    with torch.no_grad():
        pred = task.classifier(cf.images).argmax(1)
    assert (pred == batch.target).float().mean() >= 5 / 6
    assert cf.masks.shape == (6, 1, 64, 64) and cf.masks.max() <= 1 and (cf.masks == 0).any()
    assert (cf.info["nfe"] >= cf.info["steps"]).all() and (cf.info["steps"] >= 1).all()


@pytest.mark.slow
def test_sample_result_does_not_depend_on_its_batch(task):
    method = SLCF(task, torch.device("cpu"), **{**SLCF.Params.defaults(), "stage2_steps": 60})
    ids = task.sample_ids(8)
    with in_float64(task.classifier, task.component("autoencoder")):
        together = method.generate(make_batch(task, ids, dtype=torch.float64))
        # samples leave the batch at different steps
        assert len(set(together.info["steps"].tolist())) > 1
        for i in (0, 5):
            alone = method.generate(make_batch(task, [ids[i]], dtype=torch.float64))
            assert (alone.images[0] - together.images[i]).abs().max() <= 1e-4
            assert alone.info["steps"][0] == together.info["steps"][i]
