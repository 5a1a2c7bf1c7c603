"""Metric protocols: each protocol's COUT equals an independent implementation of its definition,
the protocols select the samples they say, and a finished run rescored from its directory alone
reproduces its metrics.csv."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from cfbench.catalog import PROTOCOLS as REGISTERED
from cfbench.cli import main
from cfbench.metrics.cout import transition
from cfbench.rescore import rescore

PROTOCOLS = {name: REGISTERED.get(name).load() for name in REGISTERED.names()}


class Linear(torch.nn.Module):
    """A fixed 3-class classifier on 6 x 6 images."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(
            torch.randn(3, 3 * 36, generator=torch.Generator().manual_seed(1))
        )

    def forward(self, x):
        return x.flatten(1) @ self.w.T


def fixture():
    gen = torch.Generator().manual_seed(0)
    x = torch.round(torch.rand(4, 3, 6, 6, generator=gen) * 255) / 255
    x_cf = x.clone()
    x_cf[:, :, 1:4, 2:5] = torch.round(torch.rand(4, 3, 3, 3, generator=gen) * 255) / 255
    x_cf[0, :, 0, 0] = x[0, :, 0, 0] + 3 / 255  # ties: equal 8-bit change sums
    x_cf[0, :, 5, 5] = x[0, :, 5, 5] + 3 / 255
    return x, x_cf.clamp(0, 1), torch.tensor([0, 1, 0, 2]), torch.tensor([1, 0, 2, 1])


def ace_cout(model, imgs, cfs, label, target):
    """ACE's calculate_cout (eval_utils/cout_metrics.py), as its code reads, for a multi-class
    model."""
    n, _, h, w = imgs.shape
    masks = (cfs - imgs).abs().sum(1).view(n, -1)
    masks = masks - masks.min(1, keepdim=True)[0]
    masks = masks / masks.max(1, keepdim=True)[0]
    num = h * w
    step = max(1, num // 50)
    order = torch.argsort(masks, dim=1, descending=True)
    rows = torch.arange(n)

    def probs(img):
        p = model(img).softmax(1)
        return p[rows, label], p[rows, target]

    c, cp = probs(imgs)
    c_curve, cp_curve = [c], [cp]
    current = torch.zeros(n, num)
    for pixels in range(0, num, step):
        idx = order[:, pixels : pixels + step]
        current[rows[:, None], idx] = 1
        m = current.view(n, 1, h, w)
        a, b = probs(cfs * m + imgs * (1 - m))
        c_curve.append(a)
        cp_curve.append(b)

    def auc(curve):
        return curve[0] / 2 + sum(curve[1:-1]) + curve[-1] / 2

    return (auc(cp_curve) - auc(c_curve)) * step / num


def cfbench_cout(model, imgs, cfs, label, target):
    """cfbench's definition: integer 8-bit change sums, stable descending order (raster order on
    ties), s = max(1, N // 50) pixels per step, the last step partial, trapezoid over [0, 1]."""
    n, _, h, w = imgs.shape
    num = h * w
    step = max(1, num // 50)
    out = []
    for i in range(n):
        change = ((cfs[i] * 255).round() - (imgs[i] * 255).round()).abs().sum(0).flatten().tolist()
        order = sorted(range(num), key=lambda j: (-change[j], j))
        counts = list(range(0, num, step)) + [num]
        xs, src, tgt = [], [], []
        for k in counts:
            m = torch.zeros(num)
            m[order[:k]] = 1
            m = m.view(1, h, w)
            p = model((cfs[i] * m + imgs[i] * (1 - m))[None]).softmax(1)[0]
            xs.append(k / num)
            src.append(float(p[label[i]]))
            tgt.append(float(p[target[i]]))
        out.append(np.trapezoid(tgt, xs) - np.trapezoid(src, xs))
    return torch.tensor(out)


@pytest.mark.parametrize("rule, reference", [("ace", ace_cout), ("cfbench", cfbench_cout)])
def test_cout_equals_each_protocols_definition(rule, reference):
    model = Linear()
    x, x_cf, source, target = fixture()
    with torch.no_grad():
        got = transition(model, x, x_cf, source, target, rule=rule).cout
        want = reference(model, x, x_cf, source, target)
    torch.testing.assert_close(got.double(), want.double(), atol=1e-6, rtol=0)


def test_ace_cout_integrates_past_one_when_the_last_step_is_partial():
    def flat(v):
        return torch.zeros(len(v), 3)

    def last_position(h, w, rule):
        x, x_cf = torch.zeros(1, 3, h, w), torch.ones(1, 3, h, w)
        return float(
            transition(flat, x, x_cf, torch.tensor([0]), torch.tensor([1]), rule=rule).fractions[-1]
        )

    assert last_position(8, 13, "ace") == 1.0  # 104 pixels, 2 per step: exact
    # 105 pixels: the last step counts full
    assert last_position(7, 15, "ace") == pytest.approx(106 / 105)
    assert last_position(7, 15, "cfbench") == 1.0


class _Task:
    def __init__(self, classes: int):
        self.class_names = tuple(f"c{i}" for i in range(classes))


def test_protocols_select_their_samples():
    rows = pd.DataFrame(
        {
            "source": [0, 0, 1, 1],
            "pred_before": [0, 1, 1, 1],
            "pred_after": [1, 0, 0, 0],
            "COUT": [0.2, 0.4, 0.6, 1.0],
            "flipped": [True, False, True, True],
            "sample_id": list("abcd"),
        }
    )
    assert len(PROTOCOLS["cfbench"].select("FR", rows)) == 4
    assert len(PROTOCOLS["ace"].select("FR", rows)) == 4  # main.py: stats over all n
    assert list(PROTOCOLS["ace"].select("COUT", rows)["sample_id"]) == ["a", "c", "d"]
    assert len(PROTOCOLS["slcf"].select("FR", rows)) == 4
    from cfbench.metrics.cout import CounterfactualTransition

    metric = CounterfactualTransition.__new__(CounterfactualTransition)
    metric.rules = metric.resolve_options(PROTOCOLS["slcf"].options("COUT"))
    metric.task = _Task(6)
    value, _ = metric.summarize(None, "m", PROTOCOLS["slcf"].select("COUT", rows))
    assert value == pytest.approx((0.2 + (0.6 + 1.0) / 2) / 2)  # mean of the two directions' means
    metric.task = _Task(2)  # the code's ``if not is_binary_dataset``: a binary one averages samples
    value, _ = metric.summarize(None, "m", PROTOCOLS["slcf"].select("COUT", rows))
    assert value == pytest.approx((0.2 + 0.6 + 1.0) / 3)


def test_every_protocol_sets_only_options_its_metrics_declare():
    """A protocol's options are each metric's own: a misspelt or foreign option is refused."""
    from cfbench.catalog import METRICS

    for protocol in PROTOCOLS.values():
        for metric in protocol.metrics:
            METRICS.get(metric).load().resolve_options(protocol.options(metric))
    from cfbench.metrics.cout import CounterfactualTransition

    with pytest.raises(ValueError, match="no protocol option"):
        CounterfactualTransition.resolve_options({"shuffle": "python"})
    with pytest.raises(ValueError, match="is not one of"):
        CounterfactualTransition.resolve_options({"rule": "slcf"})


def test_ace_success_is_main_py_target_rule():
    """ACE main.py: ``target = 1 - c_pred; target[lab != c_pred] = lab[lab != c_pred]`` and the
    CF accuracy ``accuracy(data_log, target)`` is divided by all ``n``: a misclassified original
    succeeds when its counterfactual is classified as its own label."""
    from cfbench.metrics.validity import FlipRate

    rows = pd.DataFrame(
        {
            "source": [0, 0, 1, 1],
            "pred_before": [0, 1, 1, 0],  # b and d are misclassified
            "pred_after": [1, 0, 1, 1],  # b -> its label 0 (success), d -> 1 (its label: success)
            "flipped": [True, False, False, False],
        }
    )
    metric = FlipRate.__new__(FlipRate)
    assert metric.values(PROTOCOLS["ace"].select("FR", rows)).tolist() == [1.0, 1.0, 0.0, 1.0]
    assert metric.values(PROTOCOLS["cfbench"].select("FR", rows)).tolist() == [1.0, 0.0, 0.0, 0.0]


def test_ace_fid_compares_all_originals_with_the_successful_counterfactuals(monkeypatch):
    """ACE compute_FID.sh: ``real`` gets ``Original/Correct/*`` and ``Original/Incorrect/*``,
    ``cf`` only ``CC/CCF/CF`` and ``IC/CCF/CF`` (the counterfactuals that flipped)."""
    from cfbench.metrics.fid import FID

    rng = np.random.default_rng(4)
    originals = rng.normal(size=(40, 3))
    counterfactuals = originals + rng.normal(0.4, 0.5, size=(40, 3))
    flipped = rng.random(40) < 0.6
    rows = pd.DataFrame(
        {"source": 0, "pred_before": 0, "pred_after": np.where(flipped, 1, 0), "flipped": flipped}
    )
    monkeypatch.setattr(FID, "features", lambda self, run, method, r: (originals, counterfactuals))
    metric = FID.__new__(FID)
    metric.notes = []
    metric.rules = metric.resolve_options(PROTOCOLS["ace"].options("FID"))
    got, _ = metric.summarize(None, "m", PROTOCOLS["ace"].select("FID", rows))
    assert got == pytest.approx(_scipy_frechet(originals, counterfactuals[flipped]), abs=1e-4)
    metric.rules = metric.resolve_options(PROTOCOLS["cfbench"].options("FID"))
    got, _ = metric.summarize(None, "m", PROTOCOLS["cfbench"].select("FID", rows))
    assert got == pytest.approx(_scipy_frechet(originals, counterfactuals), abs=1e-4)


def test_slcf_cout_is_computed_at_224_pixels():
    """SLCF's evaluation loads both images through ``img_transform(224)`` before COUT."""
    from cfbench.metrics.cout import CounterfactualTransition

    class Pooled(torch.nn.Module):
        def forward(self, x):
            return x.mean((2, 3)) @ torch.tensor([[1.0, -1.0, 0], [0, 1.0, -1.0], [-1.0, 0, 1.0]])

    x, x_cf, source, target = fixture()

    class Ctx:
        batch = type("B", (), {"images": x, "source": source, "target": target})
        counterfactuals = type("C", (), {"images": x_cf})

    metric = CounterfactualTransition.__new__(CounterfactualTransition)
    metric.rules = metric.resolve_options(PROTOCOLS["slcf"].options("COUT"))
    metric.task = type("T", (), {"classifier": Pooled()})
    curve = metric.per_sample(Ctx)["COUT_curve_target"]
    assert curve.shape[1] == len(
        transition(
            Pooled(),
            torch.zeros(1, 3, 224, 224),
            torch.ones(1, 3, 224, 224),
            source[:1],
            target[:1],
        ).target[0]
    )


@pytest.mark.slow
@pytest.mark.parametrize("protocol", ["cfbench", "ace", "slcf"])
def test_rescoring_a_finished_run_reproduces_its_metrics(tmp_path, protocol, capsys):
    out = tmp_path / "run"
    assert (
        main(
            [
                "run",
                "--task",
                "synth_cheetah_cougar",
                "--methods",
                "slcf",
                "--n",
                "8",
                "--batch-size",
                "4",
                "--protocol",
                protocol,
                "--set",
                "slcf.stage2_steps=40",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    info = json.loads((out / "run.json").read_text())
    assert info["protocol"] == protocol and info["config"]["protocol"] == protocol
    assert f"Metric protocol: {protocol}" in capsys.readouterr().out
    samples, table = rescore(str(out))
    recorded = pd.read_csv(out / "metrics.csv")
    assert recorded["protocol"].tolist() == [protocol]
    numeric = [
        c
        for c in recorded.columns
        if c not in ("task", "method", "protocol") and not c.startswith("sec_per_cf")
    ]
    pd.testing.assert_frame_equal(
        table[numeric].astype(float), recorded[numeric].astype(float), atol=1e-6, check_dtype=False
    )


def _scipy_frechet(a, b):
    import scipy.linalg

    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    return float(
        ((a.mean(0) - b.mean(0)) ** 2).sum()
        + np.trace(s1)
        + np.trace(s2)
        - 2 * np.trace(scipy.linalg.sqrtm(s1 @ s2).real)
    )


@pytest.mark.parametrize("name", ["ace", "slcf", "cfbench"])
def test_sfid_follows_each_protocols_split_rule(name, monkeypatch):
    """sFID from fixed features: ace one seed-0 half-split with only flipped CFs in the CF halves,
    slcf 10 half-splits by Python's random.shuffle seeded 2025 averaged, cfbench 10 numpy
    permutations seeded 0 — each written out here."""
    from cfbench.metrics.fid import SplitFID

    rng = np.random.default_rng(3)
    originals = rng.normal(size=(60, 4))
    counterfactuals = originals + rng.normal(0.5, 0.3, size=(60, 4))
    flipped = rng.random(60) < 0.7
    rows = pd.DataFrame(
        {
            "sample_id": [f"{i:02d}" for i in range(60)],
            "flipped": flipped,
            "source": 0,
            "pred_before": 0,
            "pred_after": np.where(flipped, 1, 0),
        }
    )
    metric = SplitFID.__new__(SplitFID)
    metric.rules, metric.notes = metric.resolve_options(PROTOCOLS[name].options("sFID")), []
    monkeypatch.setattr(
        SplitFID, "features", lambda self, run, method, r: (originals, counterfactuals)
    )
    got, _ = metric.summarize(None, "m", PROTOCOLS[name].select("sFID", rows))
    if name == "ace":
        perm = np.random.default_rng(0).permutation(60)
        one, two = perm[:30], perm[30:]
        want = (
            _scipy_frechet(originals[one], counterfactuals[two[flipped[two]]])
            + _scipy_frechet(originals[two], counterfactuals[one[flipped[one]]])
        ) / 2
    else:
        import random

        split_rng = np.random.default_rng(0)
        python_rng = random.Random(2025)
        values = []
        for _ in range(10):
            if name == "slcf":
                perm = list(range(60))
                python_rng.shuffle(perm)
                perm = np.array(perm)
            else:
                perm = split_rng.permutation(60)
            one, two = perm[:30], perm[30:]
            values.append(
                (
                    _scipy_frechet(originals[one], counterfactuals[two])
                    + _scipy_frechet(originals[two], counterfactuals[one])
                )
                / 2
            )
        want = float(np.mean(values))
    assert got == pytest.approx(want, abs=1e-4)


def test_pf_under_slcf_is_quantus_raw_auc_with_one_row_per_step():
    import quantus

    from cfbench.metrics.pixel_flipping import pixel_flipping

    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 16 * 16, 3)).eval()
    torch.manual_seed(0)
    x = torch.rand(2, 3, 16, 16)
    maps = torch.rand(2, 1, 16, 16)
    labels = torch.tensor([0, 2])
    curves = quantus.PixelFlipping(
        features_in_step=16,
        perturb_baseline="black",
        disable_warnings=True,
        display_progressbar=False,
    )(
        model=model,
        x_batch=x.numpy(),
        y_batch=labels.numpy(),
        a_batch=maps.numpy(),
        device="cpu",
        softmax=True,
    )
    curves = np.asarray(curves, dtype=float)
    assert curves.shape[1] == 3 * 16 * 16 // 16  # 48 steps of one row each
    want = np.array([sum((c[i] + c[i + 1]) / 2 for i in range(len(c) - 1)) for c in curves])
    np.testing.assert_allclose(pixel_flipping(model, x, labels, maps, rule="slcf"), want, rtol=1e-9)


def test_rescore_adds_a_metric_the_run_did_not_score_and_keeps_the_others(tmp_path):
    """A metric registered after a run (here: ones left out with --metrics, e.g. the oracle's and
    realism's, which old runs lack) is scored from the directory; the run's own columns come out
    as the run wrote them."""
    out = tmp_path / "run"
    argv = ["run", "--task", "synth_cheetah_cougar", "--methods", "pgd", "--n", "4"]
    argv += ["--metrics", "FR,COUT", "--set", "pgd.iterations=3", "--out", str(out)]
    assert main(argv) == 0
    _, table = rescore(str(out), metrics="FR,COUT,GT_IN,OFR,KID")
    written = pd.read_csv(out / "metrics.csv")
    for added in ("GT_IN", "OFR", "KID"):
        assert added not in written or written[added].isna().all()
        assert table[added].notna().all()
    for column in ("FR", "COUT"):
        np.testing.assert_allclose(table[column], written[column], rtol=1e-12)


@pytest.mark.slow
@pytest.mark.parametrize("batch_size", [1, 2, 8])
def test_rescore_reproduces_metrics_csv_byte_for_byte_whatever_the_batch(tmp_path, batch_size):
    """Each per-sample metric sees one sample at a time, so what a run wrote and what the
    directory alone gives agree exactly, whichever batch size made the run."""
    out = tmp_path / "run"
    argv = [
        "run",
        "--task",
        "synth_cheetah_cougar",
        "--methods",
        "slcf",
        "--n",
        "8",
        "--batch-size",
        str(batch_size),
        "--set",
        "slcf.stage1_steps=3",
        "--set",
        "slcf.stage2_steps=10",
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    rescore(str(out))
    assert (out / "metrics-cfbench.csv").read_bytes() == (out / "metrics.csv").read_bytes()
