"""The classifiers the seed papers explain, loaded as they are released."""

from __future__ import annotations

import torch


def test_dime_aces_celeba_classifier_gives_zero_and_the_query_logit(tmp_path):
    """DiME/ACE ``classifier.pth``: ``feat_extract`` (DiVE's DenseNet121 wrapper: torchvision's
    densenet121 under ``feat_extract``, classifier removed) and ``classifier`` (Linear 1024 -> 40);
    ACE feeds it Normalizer(0.5, 0.5) of [0, 1] images and reads logit 31 (Smiling)."""
    from torchvision.models import densenet121

    from cfbench.api.classifier import split
    from cfbench.catalog import COMPONENTS

    torch.manual_seed(0)
    trunk = densenet121(weights=None)
    trunk.classifier = torch.nn.Identity()
    wrapper = torch.nn.Module()
    wrapper.feat_extract = trunk
    head = torch.nn.Linear(1024, 40)
    torch.save(
        {"feat_extract": wrapper.state_dict(), "classifier": head.state_dict()},
        tmp_path / "classifier.pth",
    )
    kind = COMPONENTS.get("classifier").load()
    model = kind.load(f"ace-densenet:celeba:Smiling:{tmp_path / 'classifier.pth'}", {}, False)
    model.eval()
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        features = torch.nn.functional.adaptive_avg_pool2d(
            torch.relu(trunk.eval().features(x * 2 - 1)), 1
        ).flatten(1)
        expected = features @ head.weight[31] + head.bias[31]
        logits = model(x)
    torch.testing.assert_close(logits[:, 0], torch.zeros(2))
    torch.testing.assert_close(logits[:, 1], expected, rtol=1e-5, atol=1e-5)
    features_of, last = split(model, 64)  # checked: head(features(x)) == model(x)
    assert last.out_features == 2
