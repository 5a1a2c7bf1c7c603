"""FVA, FS, MNAC and CD equal a second computation that follows ACE's scripts step by step, on
tiny random networks standing in for the identity network and the oracle."""

import numpy as np
import pandas as pd
import pytest
import torch

from cfbench.api.metric import SampleContext
from cfbench.api.task import Task, TaskSamples
from cfbench.api.types import Batch, Counterfactuals
from cfbench.catalog import METRICS, PROTOCOLS

ATTRIBUTES = 6


class Faces(Task):
    """Random images with a random identity network and oracle."""

    name, class_names, pair, image_size = "toy_faces", ("off", "on"), (0, 1), 16

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        embed = torch.nn.Sequential(
            torch.nn.Conv2d(3, 4, 3), torch.nn.Flatten(), torch.nn.Linear(4 * 14 * 14, 8)
        )
        oracle = torch.nn.Sequential(
            torch.nn.Flatten(), torch.nn.Linear(3 * 16 * 16, ATTRIBUTES), torch.nn.Sigmoid()
        )
        self._loaded = {"face_identity": embed.eval(), "attribute_oracle": oracle.eval()}
        self.components = {"face_identity": "-", "attribute_oracle": "-"}

    def sample_ids(self, n):
        return [str(i) for i in range(n)]

    def load(self, ids):
        return TaskSamples(
            torch.rand(len(ids), 3, 16, 16), torch.zeros(len(ids), dtype=torch.long), ids
        )

    def attribute_correlations(self):
        return tuple("abcdef"), torch.tensor([1.0, 0.3, -0.2, 0.0, 0.5, -0.7]), 0


@pytest.fixture(scope="module")
def pairs():
    torch.manual_seed(1)
    x = torch.rand(40, 3, 16, 16)
    x_cf = (x + 0.6 * torch.randn_like(x)).clamp(0, 1)
    return x, x_cf


def scored(name, x, x_cf, task):
    metric = METRICS.build(name, task, torch.device("cpu"))
    batch = Batch(
        x,
        torch.zeros(len(x), dtype=torch.long),
        torch.ones(len(x), dtype=torch.long),
        [str(i) for i in range(len(x))],
    )
    return metric, metric.per_sample(
        SampleContext(task, batch, None, Counterfactuals(x_cf), None, None)
    )


def test_fva_and_fs_follow_compute_fva(pairs):
    """compute_FVA.py: ``dist = cosine_similarity(cl_feat, cf_feat)``, ``FVAS.append(dist > 0.5)``,
    ``np.mean(results[0])``; GCD's FS is ``np.mean(results[1])`` (the distances)."""
    x, x_cf = pairs
    task = Faces()
    oracle = task._loaded["face_identity"]
    with torch.no_grad():
        dist = torch.nn.CosineSimilarity()(oracle(x), oracle(x_cf)).numpy()
    _, fva = scored("FVA", x, x_cf, task)
    _, fs = scored("FS", x, x_cf, task)
    assert abs(float(fva["FVA"].mean()) - np.mean(dist > 0.5)) < 1e-6
    assert abs(float(fs["FS"].mean()) - np.mean(dist)) < 1e-6
    assert 0 < np.mean(dist > 0.5) < 1  # the check has both outcomes to get right


def test_mnac_follows_compute_mnac(pairs):
    """compute_MNAC.py: ``((d_cl > 0.5) != (d_cf > 0.5)).sum(dim=1)``, then ``np.mean``."""
    x, x_cf = pairs
    task = Faces()
    with torch.no_grad():
        d_cl, d_cf = task._loaded["attribute_oracle"](x), task._loaded["attribute_oracle"](x_cf)
    reference = ((d_cl > 0.5) != (d_cf > 0.5)).sum(dim=1).numpy()
    _, out = scored("MNAC", x, x_cf, task)
    assert abs(float(out["MNAC"].mean()) - np.mean(reference)) < 1e-6 and reference.max() > 0


def test_ofr_is_the_oracles_reading_of_the_query_attribute_against_the_target(pairs):
    """Independently: the oracle's query column (index 0 here) thresholded at 0.5 on x_cf, equal
    to each sample's target (mixed targets, so a metric that ignored them would fail)."""
    x, x_cf = pairs
    task = Faces()
    target = torch.arange(len(x)) % 2
    batch = Batch(x, 1 - target, target, [str(i) for i in range(len(x))])
    metric = METRICS.build("OFR", task, torch.device("cpu"))
    read = torch.where(torch.arange(len(x)) < len(x) // 2, target, 1 - target)  # half flipped
    logits_after = torch.nn.functional.one_hot(read, 2).float()
    context = SampleContext(task, batch, None, Counterfactuals(x_cf), None, logits_after)
    out = metric.per_sample(context)
    with torch.no_grad():
        reads = (task._loaded["attribute_oracle"](x_cf)[:, 0] > 0.5).long().numpy()
    reference = (reads == target.numpy()).astype(float)
    assert np.array_equal(out["OFR"].numpy(), reference) and 0 < reference.mean() < 1
    flipped = (read == target).numpy()
    fooled = flipped & (reference == 0)
    assert np.array_equal(out["fooled"].numpy(), fooled) and fooled.any()


def test_cd_follows_compute_cd(pairs):
    """compute_CD.py ``compute_CorrMetric`` (diff=True): ``deltas = cf_pred - cl_pred``,
    ``our_corrs[i] = 0 if np.any(np.isnan(cc)) else cc[0, 1]`` with ``cc = np.corrcoef(deltas[:, i],
    delta_query)``, and ``np.sum(np.abs(results[sorted] - corrs[sorted]))``."""
    x, x_cf = pairs
    task = Faces()
    metric, out = scored("CD", x, x_cf, task)
    rows = pd.DataFrame({k: list(v.numpy()) for k, v in out.items()})
    value, ci = metric.summarize(None, "m", rows)
    with torch.no_grad():
        cl_pred = (task._loaded["attribute_oracle"](x) > 0.5).numpy().astype("float")
        cf_pred = (task._loaded["attribute_oracle"](x_cf) > 0.5).numpy().astype("float")
    delta_query = cf_pred[:, 0] - cl_pred[:, 0]
    deltas = cf_pred - cl_pred
    our_corrs = np.zeros(ATTRIBUTES)
    for i in range(ATTRIBUTES):
        cc = np.corrcoef(deltas[:, i], delta_query)
        our_corrs[i] = 0 if np.any(np.isnan(cc)) else cc[0, 1]
    corrs = task.attribute_correlations()[1].numpy()
    order = np.argsort(np.abs(corrs))[::-1]
    assert abs(value - np.sum(np.abs(our_corrs[order] - corrs[order]))) < 1e-6
    assert ci is not None and ci > 0


def test_the_ace_protocol_reads_only_the_successful_counterfactuals():
    """compute_FVA.py, compute_MNAC.py and compute_CD.py list ``Results/<exp>/{CC,IC}/CCF/CF``."""
    rows = pd.DataFrame(
        {
            "sample_id": list("abcd"),
            "source": [0, 0, 1, 1],
            "pred_before": [0, 1, 1, 1],
            # b is misclassified: ACE's target is its own label, which its counterfactual reaches
            "pred_after": [1, 0, 1, 0],
            "flipped": [True, False, False, True],
        }
    )
    ace = PROTOCOLS.get("ace").load()
    for metric in ("FVA", "FS", "MNAC", "CD"):
        assert list(ace.select(metric, rows)["sample_id"]) == ["a", "b", "d"]
    assert len(PROTOCOLS.get("cfbench").load().select("FVA", rows)) == 4
