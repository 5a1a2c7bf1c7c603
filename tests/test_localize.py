"""``cfbench localize`` (Table 4): AUROC against an independent computation, Guided Backprop's rule
acting on the synthetic classifier, the CAM layer, and the command end to end with resume."""

import json

import numpy as np
import pandas as pd
import torch

from cfbench.catalog import ATTRIBUTIONS
from cfbench.cli import main
from cfbench.methods.attributions import cam_layer
from cfbench.metrics.locality import mask_auroc


def test_auroc_matches_a_rank_sum_computation_with_ties():
    from scipy.stats import rankdata

    g = torch.Generator().manual_seed(0)
    scores = torch.randint(0, 5, (3, 1, 8, 8), generator=g).float()  # many ties
    truth = (torch.rand(3, 1, 8, 8, generator=g) > 0.6).float()
    ours = mask_auroc(scores, truth).numpy()
    ref = []
    for s, t in zip(scores.flatten(1).numpy(), truth.flatten(1).numpy().astype(bool)):
        ranks, pos, neg = rankdata(s), t.sum(), (~t).sum()  # Mann-Whitney U / (pos * neg)
        ref.append((ranks[t].sum() - pos * (pos + 1) / 2) / (pos * neg))
    np.testing.assert_allclose(ours, ref, atol=1e-12)


def test_guided_backprop_rule_acts_on_the_synthetic_classifier(task):
    """captum's Guided Backprop hooks nn.ReLU modules and silently returns plain gradients for
    functional ReLUs: the synthetic classifier's ReLUs must be modules for Table 4 to mean
    anything."""
    s = task.load(task.sample_ids(2))
    guided = ATTRIBUTIONS.build("gbp", task, torch.device("cpu")).explain(s.images, s.labels, None)
    inputs = s.images.clone().requires_grad_(True)
    with torch.enable_grad():
        (plain,) = torch.autograd.grad(
            task.classifier(inputs).gather(1, s.labels[:, None]).sum(), inputs
        )
    assert not torch.allclose(guided, plain.sum(1, keepdim=True), atol=1e-6)


def test_cam_layer_is_the_last_spatial_block(task):
    x = task.load(["00000"]).images
    assert cam_layer(task.classifier, x) is task.classifier.backbone.layers


def test_localize_cli_writes_table4_and_resumes(tmp_path, capsys, monkeypatch):
    out = tmp_path / "loc"
    argv = [
        "localize",
        "--task",
        "synth_cheetah_cougar",
        "--attributions",
        "ixg,gc,gbp,lag",
        "--n",
        "4",
        "--batch-size",
        "2",
        "--device",
        "cpu",
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    summary = pd.read_csv(out / "metrics.csv")
    assert list(summary["method"]) == ["ixg", "gc", "gbp", "lag"] and (summary["n"] == 4).all()
    assert (
        summary["PF"].between(0, 1).all() and summary.set_index("method").loc["gc", "AUROC"] > 0.7
    )
    printed = capsys.readouterr().out
    assert (
        "Table 4" in printed
        and "Grad-CAM" in printed
        and (out / "figures" / "attributions.png").exists()
    )
    assert main(["table", str(out), "--table", "4", "--format", "latex"]) == 0
    from cfbench.provenance import git_commit

    info = json.loads((out / "run.json").read_text())
    assert info["git_commit"] == git_commit() and "torch" in info["versions"]

    from cfbench.methods.attributions import InputXGradientMap

    called = []
    monkeypatch.setattr(InputXGradientMap, "explain", lambda *a: called.append(1))
    assert main(argv) == 0 and not called, "a finished localisation recomputed its maps"
    assert main(["localize", "--task", "synth_cheetah_cougar", "--attributions", "ixg,nope"]) == 2
