"""FID/sFID: agreement with a direct scipy Frechet distance and with torch-fidelity's own pipeline.

The feature extractor here is a SimSiam with fixed random weights written to a temporary file:
the tests check the arithmetic and the plumbing, not the quality of the features.
"""

import numpy as np
import pandas as pd
import pytest
import scipy.linalg
import torch
import torch_fidelity
from safetensors.torch import save_file

from cfbench.components.fid_features import SIMSIAM, register_simsiam
from cfbench.components.simsiam import SimSiam
from cfbench.metrics import fid
from cfbench.results import RunDir, save_pngs


def scipy_frechet(a, b):
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("w") / "simsiam.safetensors"
    save_file(SimSiam().state_dict(), str(path))
    register_simsiam()  # as loading the fid_features component does
    return str(path)


@pytest.fixture(scope="module")
def run(tmp_path_factory, task):
    """A fake run directory: 160 originals and 'counterfactuals' that are brightened copies."""
    run = RunDir(tmp_path_factory.mktemp("run"))
    ids = [f"{i:05d}" for i in range(160)]
    x = task.load(ids).images
    save_pngs(run.images(), ids, x)
    save_pngs(run.images("m"), ids, (x * 1.3 + 0.05).clamp(0, 1))
    return run, ids


def test_frechet_distance_matches_scipy():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(400, 12))
    b = rng.normal(size=(300, 12)) @ rng.normal(size=(12, 12)) * 0.5 + 0.3
    assert fid.frechet_distance(a, b) == pytest.approx(scipy_frechet(a, b), abs=1e-3)
    assert abs(fid.frechet_distance(a, a)) < 1e-6


def test_streamed_features_match_torch_fidelity_and_scipy(run, weights):
    run, ids = run
    orig = fid.folder_features(SIMSIAM, weights, False, str(run.images()), tuple(ids))
    cf = fid.folder_features(SIMSIAM, weights, False, str(run.images("m")), tuple(ids))
    assert orig.shape == (160, 128)
    ours = fid.frechet_distance(orig, cf)
    assert ours == pytest.approx(scipy_frechet(orig, cf), abs=1e-3)
    register_simsiam()
    reference = torch_fidelity.calculate_metrics(
        input1=str(run.images()),
        input2=str(run.images("m")),
        fid=True,
        feature_extractor=SIMSIAM,
        feature_extractor_weights_path=weights,
        cuda=False,
        cache=False,
        verbose=False,
        save_cpu_ram=True,
    )[fid.KEY_METRIC_FID]
    assert ours == pytest.approx(reference, rel=1e-4)
    assert ours > 1e-3  # the brightened copies differ from the originals


def test_split_fid_is_seeded_and_exceeds_self_distance(run, weights):
    run, ids = run
    feats = fid.folder_features(SIMSIAM, weights, False, str(run.images()), tuple(ids))
    values = fid.split_fid(feats, feats)
    assert len(values) == fid.SFID_REPEATS and np.array_equal(values, fid.split_fid(feats, feats))
    # Identical sets have FID 0, but sFID compares different halves, so it cannot be 0.
    assert abs(fid.frechet_distance(feats, feats)) < 1e-6 and values.min() > 0


def test_metric_summaries_on_a_run(run, weights, task, monkeypatch):
    run, ids = run
    from cfbench.components.fid_features import FeatureExtractor

    # the task's component, with the random weights
    loaded = task.__dict__.setdefault("_loaded", {})
    monkeypatch.setitem(loaded, "fid_features", FeatureExtractor(SIMSIAM, weights, 128))
    rows = pd.DataFrame({"sample_id": ids})
    value, ci = fid.FID(task, torch.device("cpu")).summarize(run, "m", rows)
    split, spread = fid.SplitFID(task, torch.device("cpu")).summarize(run, "m", rows)
    assert ci is None and value > 0 and split > 0 and spread >= 0
    assert fid.SplitFID(task, torch.device("cpu")).summarize(run, "m", rows.head(3)) == (None, None)
