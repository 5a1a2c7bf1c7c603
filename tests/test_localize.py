"""``cfbench localize``: AUROC, Guided Backprop and the CAM layer against independent references."""
from types import SimpleNamespace

import numpy as np
import pandas as pd
import torch
from captum.attr import GuidedBackprop
from sklearn.metrics import roc_auc_score
from torch import nn

from cfbench.cli import main
from cfbench.localize import auroc, cam_layer, guided_backprop


def test_auroc_matches_sklearn_with_ties():
    g = torch.Generator().manual_seed(0)
    scores = torch.randint(0, 5, (3, 1, 8, 8), generator=g).float()   # many ties
    truth = torch.rand(3, 1, 8, 8, generator=g) > 0.6
    ours = auroc(scores, truth)
    ref = [roc_auc_score(t.flatten().numpy(), s.flatten().numpy()) for s, t in zip(scores, truth)]
    np.testing.assert_allclose(ours, ref, atol=1e-12)


def test_guided_backprop_matches_captum_on_a_module_relu_network():
    """Captum's version is right when every ReLU is an nn.ReLU module; ours must agree there."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1), nn.ReLU(),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3)).eval()
    x, source = torch.rand(2, 3, 8, 8), torch.tensor([0, 2])
    ours = guided_backprop(SimpleNamespace(classifier=net), x, source, None)
    ref = GuidedBackprop(net).attribute(x.clone(), target=source).sum(1, keepdim=True)
    torch.testing.assert_close(ours, ref)
    inputs = x.clone().requires_grad_(True)
    (plain,) = torch.autograd.grad(net(inputs).gather(1, source[:, None]).sum(), inputs)
    assert not torch.allclose(ours, plain.sum(1, keepdim=True))   # the guided rule did act


def test_cam_layer_is_the_last_spatial_block(task):
    x = task.load(["00000"]).images
    assert cam_layer(task.classifier, x) is task.classifier.backbone.layers


def test_localize_cli_writes_table4(tmp_path, capsys):
    out = tmp_path / "loc"
    rc = main(["localize", "--task", "synth_cheetah_cougar", "--attributions", "ixg,gc,gbp", "--n", "4",
               "--batch-size", "2", "--device", "cpu", "--out", str(out)])
    assert rc == 0
    summary = pd.read_csv(out / "localize.csv")
    assert list(summary["key"]) == ["ixg", "gc", "gbp"] and (summary["n"] == 4).all()
    assert summary["PF"].between(0, 1).all() and summary.set_index("key").loc["gc", "AUROC"] > 0.7
    printed = capsys.readouterr().out
    assert "Table 4" in printed and "Grad-CAM" in printed and (out / "figures" / "attributions.png").exists()
    assert main(["localize", "--task", "synth_cheetah_cougar", "--attributions", "ixg,nope"]) == 2
