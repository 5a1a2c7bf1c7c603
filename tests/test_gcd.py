"""GCD: black-box use of the classifier, directions fitted once per run and reused on resume,
line search independent of the batch, BB-LIG on a path with a known answer."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch
from conftest import in_float64, make_batch, make_task
from torch import nn

from cfbench.api.types import Batch
from cfbench.catalog import METHODS
from cfbench.methods.gcd import GCD
from cfbench.methods.gcd.bblig import bb_lig, clip_top
from cfbench.methods.gcd.proxy import fit_proxy
from cfbench.runner import Runner, RunSpec

TINY = [
    "{m}.n_proxy=48",
    "{m}.k=3",
    "{m}.encode_steps=2",
    "{m}.decode_steps=2",
    "{m}.search_steps=2",
    "{m}.proxy_epochs=5",
]


def tiny(method: str) -> list[str]:
    return [s.format(m=method) for s in TINY]


class _NoBackward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, logits):
        return logits.clone()

    @staticmethod
    def backward(ctx, grad):
        raise AssertionError("GCD differentiated through the classifier")


class ForwardOnly(nn.Module):
    """The classifier, made to fail on any backward pass through it."""

    def __init__(self, classifier):
        super().__init__()
        self.inner = classifier
        self.calls = 0

    def forward(self, x):
        self.calls += len(x)
        return _NoBackward.apply(self.inner(x))


def test_classifier_is_only_called_forward(tmp_path, monkeypatch):
    task = make_task()
    wrapped = ForwardOnly(task.classifier)
    task._loaded["classifier"] = wrapped
    method = METHODS.build(
        "gcd_h",
        task,
        torch.device("cpu"),
        n_proxy=48,
        k=3,
        encode_steps=2,
        decode_steps=2,
        search_steps=2,
        proxy_epochs=5,
    )
    record = method.fit(task.sample_ids(4), 0, tmp_path / "fit")
    assert (
        wrapped.calls
        == sum(d.get("classifier_calls", 0) for d in record["directions"].values())
        == 48  # one shared direction: one proxy fit of N = 48 renders
    )
    batch = make_batch(task, ["00000", "00001"])
    wrapped.calls = 0
    out = method.generate(batch)
    # k alphas on each side of h, then the BB-LIG path
    assert int(out.info["nfe"].sum()) == 2 * 2 * 3
    assert wrapped.calls == int(out.info["nfe"].sum() + out.info["mask_nfe"].sum())
    # and the check itself works: a white-box gradient through the wrapper fails
    x = batch.images.clone().requires_grad_(True)
    with pytest.raises(AssertionError, match="differentiated"):
        wrapped(x).sum().backward()


def test_resume_reuses_stored_directions(tmp_path, monkeypatch, capfd):
    spec = RunSpec(
        task="synth_cheetah_cougar",
        methods=["gcd"],
        n=4,
        batch_size=2,
        out=tmp_path / "run",
        metrics="FR,nfe",
        overrides=tiny("gcd"),
    )
    run = Runner(spec).execute()
    assert "gcd fit: " in capfd.readouterr().err  # the fit shows its own status line
    info = json.loads(run.run_json.read_text())
    recorded = info["config"]["methods"]["gcd"]  # every value the run used, none left to fill in
    assert (
        None not in recorded.values() and recorded["n_proxy"] == 48 and recorded["alpha_max"] == 3.0
    )
    fit = info["method_provenance"]["gcd"]["fit"]
    assert fit["directions"]["2"]["source_id"] == "00000"
    assert fit["directions"]["3"] == {"shared_from": "2"}  # one direction for the pair
    first = pd.read_parquet(run.samples)
    stored = (run.root / "fitted" / "gcd" / "directions.safetensors").read_bytes()
    # the one fit's calls are spread over the samples it edits: 48 calls / 4 samples
    assert (first["fit_nfe"] == 12).all()
    assert float(pd.read_csv(run.metrics)["nfe"][0]) == pytest.approx(3 + 12)
    # lose the second batch, as if killed before it (a finished run is left alone); the resumed run
    # must not fit again
    for part in (run.root / "parts" / "gcd").iterdir():
        if "00002" in pd.read_parquet(part)["sample_id"].tolist():
            part.unlink()
    run.run_json.write_text(json.dumps(info | {"finished": False}))
    monkeypatch.setattr(GCD, "_fit_direction", lambda *a, **k: pytest.fail("refitted on resume"))
    run = Runner(spec).execute()
    assert "gcd fit" not in capfd.readouterr().err
    again = pd.read_parquet(run.samples)
    assert (run.root / "fitted" / "gcd" / "directions.safetensors").read_bytes() == stored
    pd.testing.assert_frame_equal(
        first.drop(columns=["seconds", "fit_seconds"]),
        again.drop(columns=["seconds", "fit_seconds"]),
    )


def test_line_search_does_not_depend_on_the_batch(tmp_path):
    task = make_task()
    method = METHODS.build(
        "gcd",
        task,
        torch.device("cpu"),
        n_proxy=48,
        k=3,
        encode_steps=2,
        decode_steps=2,
        search_steps=2,
        proxy_epochs=5,
    )
    method.fit(task.sample_ids(4), 0, tmp_path / "fit")
    ids = ["00000", "00001", "00002"]
    with in_float64(method.dae, task.classifier):
        method.directions = {c: d.double() for c, d in method.directions.items()}
        together = method.generate(make_batch(task, ids, dtype=torch.float64))
        alone = [method.generate(make_batch(task, [i], dtype=torch.float64)) for i in ids]
    for i, single in enumerate(alone):
        torch.testing.assert_close(together.images[i], single.images[0], rtol=0, atol=1e-9)
        torch.testing.assert_close(together.masks[i], single.masks[0], rtol=0, atol=1e-9)
        assert together.info["alpha_fraction"][i] == single.info["alpha_fraction"][0]


def test_pair_score_ignores_a_third_class_that_prob_would_drift_to():
    task = make_task()
    # class 2 is neither source nor target
    logits = torch.tensor([[2.0, 1.0, 10.0], [1.0, 2.0, 10.0]])
    source, target = torch.tensor([0, 0]), torch.tensor([1, 1])
    pair = METHODS.build("gcd", task, torch.device("cpu"), score="pair_prob").score(
        logits, source, target
    )
    torch.testing.assert_close(pair, torch.sigmoid(torch.tensor([1.0, -1.0])))
    literal = METHODS.build("gcd", task, torch.device("cpu"), score="prob").score(
        logits, source, target
    )
    assert (literal < 1e-3).all()  # p(source) all but zero although the target is not reached


@pytest.mark.slow
def test_gcd_study_writes_its_three_tables(tmp_path, capsys):
    from cfbench.cli import main

    sets = [a for s in TINY for a in ("--set", s.format(m="gcd"))]
    out = tmp_path / "study"
    assert (
        main(
            [
                "gcd-study",
                "--task",
                "synth_cheetah_cougar",
                "--n",
                "4",
                "--sources",
                "2",
                "--h-candidates",
                "3",
                "--out",
                str(out),
                *sets,
            ]
        )
        == 0
    )
    sources = pd.read_csv(out / "sources.csv")
    assert sources["fits"][0] == 2 and {"FR", "FR_std", "GT_IN_std"} <= set(sources.columns)
    per_fit = pd.read_csv(out / "source_fits.csv")
    assert per_fit["source_index"].tolist() == [0, 1]
    assert sources["FR"][0] == pytest.approx(per_fit["FR"].mean())
    assert sources["FR_std"][0] == pytest.approx(per_fit["FR"].std(ddof=1), nan_ok=True)
    table = pd.read_csv(out / "metrics.csv")
    assert table["method"].tolist()[:2] == ["g", "g (r = 4)"] and len(table) == 5
    radius = json.loads((out / "g-r4" / "run.json").read_text())["methods"]["gcd"]["radius"]
    assert radius == 4.0
    assert set(pd.read_csv(out / "masks.csv")["map"]) == {"BB-LIG", "|x - x_cf|"}
    fits = [
        json.loads((out / f"g-source-{i}" / "run.json").read_text())["method_provenance"]["gcd"][
            "fit"
        ]
        for i in range(2)
    ]
    assert fits[0]["directions"]["2"]["source_id"] != fits[1]["directions"]["2"]["source_id"]
    assert "GCD directions" in capsys.readouterr().out
    info = json.loads((out / "run.json").read_text())
    assert (
        info["git_commit"]
        == json.loads((out / "g-source-0" / "run.json").read_text())["git_commit"]
    )
    assert "torch" in info["versions"]
    # the h-candidates reuse g-source-0's proxy, and get the directions a fresh fit would give
    h_fit = json.loads((out / "h-1" / "run.json").read_text())["method_provenance"]["gcd_h"]["fit"]
    assert h_fit["directions"]["2"]["proxy_reused"] and not fits[0]["directions"]["2"].get(
        "proxy_reused"
    )
    assert (
        h_fit["directions"]["2"]["proxy_val_loss"] == fits[0]["directions"]["2"]["proxy_val_loss"]
    )
    fresh = Runner(
        RunSpec(
            task="synth_cheetah_cougar",
            methods=["gcd_h"],
            n=4,
            out=tmp_path / "fresh",
            metrics="FR",
            overrides=tiny("gcd_h") + ["gcd_h.index=1"],
        )
    ).execute()
    assert (fresh.root / "fitted" / "gcd_h" / "directions.safetensors").read_bytes() == (
        out / "h-1" / "fitted" / "gcd_h" / "directions.safetensors"
    ).read_bytes()


def test_mask_table_leaves_out_samples_without_a_bb_lig_map(tmp_path):
    """A path without a baseline gives an all-zero map (released ``sig.py``); Quantus refuses a
    batch of only such maps, so they are counted apart and both maps are scored on the rest."""
    import numpy as np
    from PIL import Image

    from cfbench.experiments.gcd_study import mask_complexity
    from cfbench.results import RunDir

    run = RunDir(tmp_path)
    rng = np.random.default_rng(0)
    ids = ["a", "b", "c"]
    for folder in (run.images(), run.images("gcd"), run.masks("gcd")):
        folder.mkdir(parents=True)
    for i, sid in enumerate(ids):
        for folder in (run.images(), run.images("gcd")):
            pixels = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(folder / f"{sid}.png")
        mask = np.zeros((8, 8), np.uint8)
        if i == 1:
            mask[2:4, 2:4] = 255
        Image.fromarray(mask).save(run.masks("gcd") / f"{sid}.png")
    pd.DataFrame({"sample_id": ids, "method": "gcd"}).to_parquet(run.samples)
    table = mask_complexity(run, "gcd").set_index("map")
    assert table["n"].tolist() == [1, 1] and table["no_map"].tolist() == [2, 2]
    assert table.loc["BB-LIG", "Sparseness"] > table.loc["|x - x_cf|", "Sparseness"]
    pd.DataFrame({"sample_id": ["a"], "method": "gcd"}).to_parquet(run.samples)
    none = mask_complexity(run, "gcd")
    assert none["n"].tolist() == [0, 0] and none["Sparseness"].isna().all()


def test_proxy_fit_depends_only_on_its_generator():
    """The run's seed fixes the fitted direction: the proxy's initial weights come from the fit's
    generator, not from whatever state the global random stream is in."""
    z = torch.randn(64, 8, generator=torch.Generator().manual_seed(1))
    targets = torch.stack([z[:, 0].sigmoid(), z.norm(dim=1)], 1)
    fits = []
    for global_seed in (0, 1):
        torch.manual_seed(global_seed)
        proxy, _, _ = fit_proxy(
            z, targets, torch.ones(2), 1e-3, 3, torch.Generator().manual_seed(5)
        )
        fits.append(torch.cat([p.flatten() for p in proxy.parameters()]))
    assert torch.equal(fits[0], fits[1])


def test_out_of_range_h_index_stops_before_any_proxy_data(tmp_path, monkeypatch, capsys):
    from cfbench.cli import main
    from cfbench.components.diffae import DiffusionAutoencoder

    def no_decode(*args, **kwargs):
        raise AssertionError("proxy data rendered for an index that cannot exist")

    monkeypatch.setattr(DiffusionAutoencoder, "decode", no_decode)
    sets = [a for s in tiny("gcd_h") + ["gcd_h.index=4096"] for a in ("--set", s)]
    assert (
        main(
            [
                "run",
                "--task",
                "synth_cheetah_cougar",
                "--methods",
                "gcd_h",
                "--n",
                "2",
                "--out",
                str(tmp_path / "run"),
                *sets,
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert (
        "index 4096 is out of range" in err and "indices are 0-" in err and "Traceback" not in err
    )


def test_f_is_the_papers_margin_or_the_codes_signed_logit():
    """Paper: f is a score whose sign gives the class (logit margin). Released code,
    gcd/src/losses/counterfactual_loss_from_general_components.py (``forward``): ``pos_label_logit =
    predictions[:, pos_label_idx]``, negated when ``clf_pred_label == 0``, and ``loss = weight_cls *
    pos_label_logit + weight_lpips * lpips``."""
    task = make_task()  # pair (2, 3): the positive class of the code's reading is 3
    logits = torch.tensor([[0.0, 0.0, 5.0, 1.0], [0.0, 0.0, 1.0, 4.0]])
    source, target = torch.tensor([2, 3]), torch.tensor([3, 2])
    paper = METHODS.build("gcd", task, torch.device("cpu")).score(logits, source, target)
    torch.testing.assert_close(paper, torch.tensor([4.0, 3.0]))
    code = METHODS.build("gcd_code", task, torch.device("cpu")).score(logits, source, target)
    torch.testing.assert_close(code, torch.tensor([-1.0, 4.0]))
    assert (
        METHODS.params("gcd", task).score == "margin"
        and METHODS.params("gcd_code", task).score == "logit"
    )


class _Path:
    """A fake diffusion autoencoder whose renders carry alpha in their pixels, and a classifier
    reading it: the line search's choice can be worked out by hand."""

    z_dim = 2

    def encode(self, x, steps):
        return torch.zeros(len(x), 2), torch.zeros(len(x), 3, 4, 4)

    def decode(self, z, x_T, steps):
        return z[:, :1].view(-1, 1, 1, 1).expand(-1, 3, 4, 4) / 10


@pytest.mark.parametrize(
    "rule, weights, expected",
    [("paper", None, 1.0), ("pair_weights", [1.0, 0.0], 3.0), ("pair_weights", [0.05, 1.0], 0.0)]
    + [("flipped", None, 2.0)],
)
def test_the_line_search_takes_its_sources_choice(rule, weights, expected):
    """Paper, Eq. 5 / Alg. 3: argmin over alpha of L_CF = f + lambda s over all alphas. Released
    strategy (gcd/src/strategies/single_image_gmc_mlp_proxy_training.py, ``post_proxy_loop``): the
    line-search loss of each (w_cls, w_lpips) pair, w_cls * f + w_lpips * s, on its direction's
    source image (the code picks no alpha for other images). cfbench's earlier rule: the lowest
    L_CF among flips."""
    task = make_task()
    method = METHODS.build("gcd", task, torch.device("cpu"), search_rule=rule, k=4, alpha_max=3.0)
    method.dae = _Path()
    # f = margin = 1 - alpha (flips from alpha 2 on); s = alpha^2 / 2 (distance grows)
    method.classifier = lambda img: torch.stack(
        [torch.full((len(img),), -10.0)] * 2
        + [1 - img.mean((1, 2, 3)) * 10, torch.zeros(len(img))],
        1,
    )
    method.distance = lambda a, b: (b.mean((1, 2, 3)) * 10) ** 2 / 2
    fitted = {"weights": weights} if weights else {}
    method.fit_record = {"z_scale": 1.0, "directions": {"2": fitted}}
    method.directions = {2: torch.tensor([1.0, 0.0])}
    found = method.search(torch.zeros(1, 3, 4, 4), torch.tensor([2]), torch.tensor([3]))
    # alphas 0, 1, 2, 3: L_CF = 1, 0.5, 1, 2.5; f = 1, 0, -1, -2; flips at 2 and 3;
    # 0.05 f + s = 0.05, 0.5, 1.95, 4.4
    assert float(found["alpha"][0]) == expected


def test_one_direction_serves_the_pair_and_r_is_in_raw_units(tmp_path):
    """The abstract: "g-directions allow for flipping the decision of a given classifier on an
    entire dataset of images"; gcd/src/direction_transfer.py negates the direction for an image
    predicted as the other class. Raw units: configs ``max_norm: 1``, transfer steps in [-3, 3]."""
    task = make_task()
    method = METHODS.build(
        "gcd",
        task,
        torch.device("cpu"),
        n_proxy=48,
        k=3,
        encode_steps=2,
        decode_steps=2,
        search_steps=2,
        proxy_epochs=5,
        units="raw",
    )
    record = method.fit(task.sample_ids(4), 0, None)
    assert record["z_scale"] == 1.0 and record["directions"]["3"] == {"shared_from": "2"}
    torch.testing.assert_close(method.directions[3], -method.directions[2])
    scaled = METHODS.params("gcd", task)
    assert scaled.units == "scaled"  # the synthetic CPU setting
    assert METHODS.params("gcd", task, {"share_direction": "false"}).share_direction is False


def test_h_directions_are_the_papers_hessian_or_the_codes_and_search_both_signs(monkeypatch):
    """Paper, Eq. 4: eigenvectors of the Hessian of p_f + lambda * p_s; released strategy
    (``get_grads_dict``): of the classifier term alone (``weight_lpips=0.0``), by |eigenvalue|,
    with a side picked from the eigenvalue's sign whose meaning depends on the eigensolver's
    arbitrary sign; the released transfer renders a symmetric grid, so both sides are searched."""
    task = make_task()

    class Quadratic(torch.nn.Module):  # f = v' H_f v / 2, s = v' H_s v / 2
        read_f = staticmethod(lambda out: out[:, 0])

        def f_and_s(self, v):
            return (0.5 * (v @ hf * v).sum(1), 0.5 * (v @ hs * v).sum(1))

    hf, hs = torch.diag(torch.tensor([2.0, -1.0])), torch.diag(torch.tensor([0.0, 5.0]))
    monkeypatch.setattr(
        "cfbench.methods.gcd.method.proxy_around", lambda *a: (Quadratic(), {"z_dim": 2})
    )
    paper = METHODS.build("gcd_h", task, torch.device("cpu"), index=0, lam=1.0)
    d, facts, _ = paper._fit_direction("s", torch.zeros(1, 3, 64, 64), 2, 1.0, 0)
    assert facts["eigenvalues"][0] == 4.0  # H_f + H_s = diag(2, 4): the second axis
    torch.testing.assert_close(d.abs(), torch.tensor([0.0, 1.0]))
    code = METHODS.build("gcd_h", task, torch.device("cpu"), index=0, hessian_of="f")
    d, facts, _ = code._fit_direction("s", torch.zeros(1, 3, 64, 64), 2, 1.0, 0)
    assert facts["eigenvalues"][0] == 2.0
    torch.testing.assert_close(d.abs(), torch.tensor([1.0, 0.0]))
    assert METHODS.params("gcd_h", task).h_signs == "both"
    assert METHODS.params("gcd_code", task).hessian_of == "f"


def test_code_proxy_data_accumulate_over_blocks(monkeypatch):
    """general_multicomponent_mlp.py: ``prepare_train_val_data`` appends every iteration's batches
    to ``training_data`` / ``validation_data``, which ``reinit`` never clears: block i's fresh MLP
    trains on (i + 1) x n_proxy samples."""
    from cfbench.methods.gcd import proxy

    task = make_task()
    gen = torch.Generator().manual_seed(0)

    def data(method, x, source, scale, g, block):
        z = torch.randn(32, 4, generator=gen)
        return z, torch.stack([z[:, 0], z[:, 1].abs()], 1)

    monkeypatch.setattr(proxy, "proxy_data", data)
    for mode, expected in (("accumulate", [32, 64, 96]), ("fresh", [32, 32, 32])):
        method = METHODS.build(
            "gcd", task, torch.device("cpu"), n_proxy=32, proxy_epochs=2, proxy_data=mode
        )
        samples = [
            proxy.proxy_around(method, "s", None, 2, 1.0, 0, block)[1]["proxy_samples"]
            for block in range(3)
        ]
        assert samples == expected
    assert METHODS.params("gcd_code", task).proxy_data == "accumulate"


def test_gcd_code_runs_in_raw_units_and_follows_the_prediction():
    task = make_task()
    p = METHODS.params("gcd_code", task)
    assert (p.units, p.sign_by, p.search_rule, p.proxy_outputs) == (
        "raw",
        "prediction",
        "pair_weights",
        "logits",
    )
    assert METHODS.params("gcd", task).units == "scaled"  # the synthetic CPU setting


class _Pixel:
    """A fake diffusion autoencoder whose render darkens pixel (0, 0) as z[0] grows (the other
    pixels stay grey), and a classifier whose source margin is that pixel's value times 10 minus 5:
    the BB-LIG map and the classifier calls can be worked out by hand."""

    z_dim = 2

    def encode(self, x, steps):
        return torch.zeros(len(x), 2), torch.zeros(len(x), 3, 4, 4)

    def decode(self, z, x_T, steps):
        img = torch.full((len(z), 3, 4, 4), 0.5)
        img[:, :, 0, 0] = (1 - z[:, :1] / 4).clamp(0, 1)
        return img


def _pixel_method(**overrides):
    task = make_task()
    method = METHODS.build(
        "gcd", task, torch.device("cpu"), **{"k": 5, "alpha_max": 4.0, **overrides}
    )
    method.dae = _Pixel()
    calls = []

    def classifier(img):
        calls.append(len(img))
        margin = img[:, 0, 0, 0] * 10 - 5
        zero = torch.zeros(len(img))
        return torch.stack([zero, zero, margin, zero], 1)

    method.classifier = classifier
    method.fit_record = {"z_scale": 1.0}
    method.directions = {2: torch.tensor([1.0, 0.0])}
    return method, calls


def test_bb_lig_walks_a_fresh_path_to_the_baseline_and_puts_the_change_on_its_pixel():
    """Alg. 4 and bblig/src/experiment/sig.py: ``get_baseline_idx`` (the first search step with
    p < ``thr_prob``), then ``get_batch_step_sizes`` (``torch.linspace(0., max_step_size,
    path_length)``) renders a new path, quantised (``convert_image_dtype`` to uint8); ``get_sig``
    sums the gradients over the path and multiplies by ``orig - baseline``."""
    method, calls = _pixel_method(lig_path=7)
    x, source, target = torch.full((1, 3, 4, 4), 0.5), torch.tensor([2]), torch.tensor([3])
    found = method.search(x, source, target)
    # alphas 0..4: pixel 1, .75, .5, .25, 0 -> margin 5, 2.5, 0, -2.5, -5; p(source) < .01 first
    # at margin -5 (sigmoid(-5) = .0067): the baseline is alpha 4
    assert float(found["baseline"][0]) == 4.0 and sum(calls) == 5
    calls.clear()
    mask = bb_lig(method, x, found, source, target)
    assert sum(calls) == 7  # a fresh path, not the search's five renders
    assert mask[0, 0, 0, 0] == 1 and mask[0, 0].flatten()[1:].abs().sum() == 0


def test_bb_lig_gradients_by_finite_differences_or_exactly_agree_on_a_linear_classifier():
    """Paper: finite differences (black-box); sig.py's default ``approx_grad: false`` takes
    ``torch.autograd.grad`` of the classifier's output on the path."""
    maps = {}
    for rule in ("finite", "exact"):
        method, _ = _pixel_method(lig_path=5, lig_gradient=rule)
        if rule == "exact":
            method.task._loaded["classifier"] = method.classifier
        x, source, target = torch.full((1, 3, 4, 4), 0.5), torch.tensor([2]), torch.tensor([3])
        maps[rule] = bb_lig(method, x, method.search(x, source, target), source, target)
    torch.testing.assert_close(maps["finite"], maps["exact"])


def test_bb_lig_is_zero_when_the_path_has_no_baseline():
    """bblig/src/experiment/sig.py, ``get_sig_paths``: a path whose baseline was not found renders
    black images, so its attribution is zero (``get_sig``: ``sig = torch.zeros_like(orig)``)."""
    method, _ = _pixel_method(lig_path=3, alpha_max=1.0)  # the margin never falls below -5
    x, source, target = torch.full((1, 3, 4, 4), 0.5), torch.tensor([2]), torch.tensor([3])
    found = method.search(x, source, target)
    assert found["baseline"].isnan().all()
    assert bb_lig(method, x, found, source, target).abs().sum() == 0


def test_bb_lig_normalisation_clips_the_top_two_percent_of_mass():
    """bblig/src/experiment/utils.py, ``normalize_attr`` with ``outlier_perc=2``: divide by the
    value at which the sorted cumulative sum passes 98 % of the total, then clip at 1."""
    values = torch.tensor([1.0] * 98 + [50.0, 100.0]).view(1, 1, 10, 10)
    out = clip_top(values)
    # cumulative sums 1..98, 148, 248: the first above 0.98 * 248 = 243.04 is the 100 -> no clip
    torch.testing.assert_close(out.flatten()[-1], torch.tensor(1.0))
    torch.testing.assert_close(out.flatten()[0], torch.tensor(0.01))
    spiky = torch.tensor([1.0] * 99 + [1.5]).view(1, 1, 10, 10)  # top value holds < 2 % of mass
    assert clip_top(spiky).flatten()[-1] == 1 and clip_top(spiky).flatten()[0] == 1
    assert clip_top(torch.zeros(1, 1, 2, 2)).abs().sum() == 0


def test_code_proxy_squashes_s_and_may_stop_from_the_second_epoch():
    """gcd/src/proxies/general_multicomponent_mlp.py: ``lpips = F.sigmoid(x[:, -1])``; ``run_epoch``
    stops when ``mean_val_loss > running_mean`` as soon as the history holds one value."""
    z = torch.randn(256, 4, generator=torch.Generator().manual_seed(0))
    targets = torch.stack([z[:, 0], 5 + z[:, 1]], 1)  # s far outside [0, 1]
    proxy, _, _ = fit_proxy(
        z, targets, torch.ones(2), 1e-3, 2, torch.Generator().manual_seed(1), sigmoid_distance=True
    )
    out = proxy(z)
    assert (out[:, 1] > 0).all() and (out[:, 1] < 1).all()
    # a learning rate so large the validation loss must rise at once
    late = fit_proxy(z, targets, torch.ones(2), 10.0, 50, torch.Generator().manual_seed(1))
    early = fit_proxy(
        z, targets, torch.ones(2), 10.0, 50, torch.Generator().manual_seed(1), stop_from=2
    )
    assert early[2] < late[2] and late[2] >= 6


def test_code_g_candidates_and_blocks_pick_the_lowest_search_loss(tmp_path):
    """gcd/src/strategies/single_image_gmc_mlp_proxy_training.py: ``get_grads_dict`` takes one
    gradient per (weight_cls, weight_lpips) pair; each of ``n_iters`` iterations draws fresh samples
    (``clear_proxy_training_data``) and refits a fresh proxy (``reinit``)."""
    task = make_task()
    params = dict(n_proxy=16, k=3, encode_steps=1, decode_steps=1, search_steps=1, proxy_epochs=3)
    method = METHODS.build("gcd", task, torch.device("cpu"), g_weights="code", blocks=2, **params)
    record = method.fit(task.sample_ids(4), 0, None)
    facts = record["directions"]["2"]
    assert len(facts["candidate_losses"]) == 4  # two blocks x two weight pairs
    best = min(range(4), key=facts["candidate_losses"].__getitem__)
    assert facts["block"] == best // 2 and facts["weights"] == [[1.0, 0.0], [0.05, 1.0]][best % 2]
    assert facts["classifier_calls"] == 2 * 16 + 4 * 3
    one = METHODS.build("gcd", task, torch.device("cpu"), **params).fit(task.sample_ids(4), 0, None)
    assert "candidate_losses" not in one["directions"]["2"]
    assert one["directions"]["2"]["classifier_calls"] == 16


def test_gcd_code_carries_the_released_configuration():
    """gcd/configs/single_image_gmc_mlp_proxy_training/celeba-hq/dense_net/smile/config.yaml:
    ``n_iters: 52``, ``n_steps_dae: 8`` x ``batch_size: 128``, ``n_steps_proxy: 1024``,
    ``line_search_weight_cls_list: [1.0, 0.05]`` / ``..._lpips_list: [0, 1.0]``, ``lpips_net: vgg``,
    ``T_encode: 250``, ``T_render: 100``; bblig/configs/sig.yaml: ``path_length: 128``,
    ``approx_grad: false``."""
    p = METHODS.params("gcd_code", make_task())
    assert (p.blocks, p.n_proxy, p.proxy_epochs, p.early_stop_from) == (52, 1024, 1024, 2)
    assert (p.g_weights, p.lpips_net, p.distance_head) == ("code", "vgg", "sigmoid")
    assert (p.encode_steps, p.decode_steps, p.lig_path, p.lig_gradient) == (250, 100, 128, "exact")
    paper = METHODS.params("gcd", make_task(), {"lig_path": "128"})
    assert (paper.blocks, paper.g_weights, paper.lig_gradient) == (1, "paper", "finite")


@pytest.mark.parametrize("decode_steps, renders", [(2, 5 + 6), (3, 5 + 6 + 1)])
def test_renders_the_search_already_made_are_not_made_again(decode_steps, renders):
    """The counterfactual at the chosen alpha and the BB-LIG path's alpha-0 point are line-search
    renders when the step counts agree: the same images, rendered once."""
    method, _ = _pixel_method(lig_path=7, search_steps=2, decode_steps=decode_steps)
    rendered = []
    decode = method.dae.decode
    method.dae.decode = lambda z, x_T, steps: rendered.append(len(z)) or decode(z, x_T, steps)
    batch = Batch(
        torch.full((1, 3, 4, 4), 0.5), torch.tensor([2]), torch.tensor([3]), ["s"], generators=[]
    )
    cf = method.generate(batch)
    assert len(rendered) == renders  # k = 5 search renders, 6 new path points (+ a final one)
    alpha = float(cf.info["alpha_fraction"][0]) * 4.0
    expected = decode(torch.tensor([[alpha, 0.0]]), None, 2)
    torch.testing.assert_close(cf.images, expected)
