"""The attribute oracle: a network, separate from the classifier under explanation, that reads
every face attribute, so that MNAC (how many attributes a counterfactual changed) and CD (whether
the changes follow the data's correlations) are measured by a judge the method never saw.

``asset:NAME``: a project-trained multi-label CNN on the synthetic faces (a VGG-style network with
its own seed, unlike the ResNet-style classifiers it judges, as ACE's oracle is a separate
architecture), returning per-attribute probabilities B x A in the order of ``attributes``.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from cfbench.api.classifier import Normalize
from cfbench.api.component import Component, load_weights
from cfbench.errors import UserError


class OracleNet(nn.Module):
    """VGG-style multi-label network (a strided stem, then pairs of 3x3 convolutions and pooling):
    [0, 1] images -> attribute logits."""

    def __init__(self, attributes: tuple[str, ...], widths=(32, 64, 128)):
        super().__init__()
        self.attributes = tuple(attributes)
        self.normalize = Normalize()
        layers, cin = (
            [nn.Conv2d(3, widths[0], 3, 2, 1), nn.BatchNorm2d(widths[0]), nn.ReLU()],
            widths[0],
        )
        for w in widths:
            layers += [
                nn.Conv2d(cin, w, 3, padding=1),
                nn.BatchNorm2d(w),
                nn.ReLU(),
                nn.Conv2d(w, w, 3, padding=1),
                nn.BatchNorm2d(w),
                nn.ReLU(),
                nn.MaxPool2d(2),
            ]
            cin = w
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(cin, len(self.attributes))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(self.normalize(x)).mean((2, 3)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Per-attribute probabilities B x A (an attribute is present above 0.5, as ACE counts)."""
        return torch.sigmoid(self.logits(x))


def train_synthetic(
    world,
    n_train: int = 24000,
    steps: int = 2000,
    batch: int = 64,
    seed: int = 1,
    lr: float = 2e-3,
    max_noise: float = 0.04,
):
    """BCE on every attribute of rendered faces; held-out accuracy per attribute."""
    from cfbench.components.training import HELDOUT_SEED, TRAIN_SEED, as_float, fit

    torch.manual_seed(seed)
    x, y = world.annotations(TRAIN_SEED + 6, n_train)
    model = OracleNet(world.attribute_names)
    gen = torch.Generator().manual_seed(seed)

    def loss(_):
        idx = torch.randint(len(x), (batch,), generator=gen)
        xb = as_float(x[idx])
        sigma = torch.rand(batch, 1, 1, 1, generator=gen) * max_noise
        xb = (xb + sigma * torch.randn(xb.shape, generator=gen)).clamp(0, 1)
        return F.binary_cross_entropy_with_logits(model.logits(xb), y[idx].float())

    model.train()
    fit(
        model.parameters(),
        steps,
        loss,
        "attribute oracle",
        optimizer=lambda p: torch.optim.AdamW(p, lr=lr, weight_decay=1e-4),
    )
    model.eval()
    xv, yv = world.annotations(HELDOUT_SEED, 3000)
    with torch.no_grad():
        pred = torch.cat([model(as_float(b)) > 0.5 for b in xv.split(256)])
    per = (pred == yv.bool()).float().mean(0)
    return model, {
        "heldout_accuracy": {a: round(float(v), 4) for a, v in zip(model.attributes, per)},
        "heldout_accuracy_min": round(float(per.min()), 4),
        "heldout_n": 3000,
        "attribute_rates": {
            a: round(float(v), 4) for a, v in zip(model.attributes, yv.float().mean(0))
        },
    }


class AttributeOracle(Component):
    kind = "attribute_oracle"
    what = "an attribute oracle (MNAC and CD judge every attribute with it)"
    how = "a file the synthetic tasks ship; real CelebA oracles are not supported yet"
    assets = {"face_oracle": {"world": "faces"}}

    @classmethod
    def load(cls, where, needs, shipped):
        if not shipped:
            raise UserError(
                f"Loading a real attribute oracle ({where}) is not supported yet: only the "
                "synthetic faces' project-trained oracle is."
            )
        from safetensors import safe_open

        with safe_open(str(where), "pt") as f:
            attributes = tuple(f.metadata()["attributes"].split(","))
        return load_weights(OracleNet(attributes), where)

    @classmethod
    def train(cls, out, needs, world, **options):
        from safetensors.torch import save_file

        model, stats = train_synthetic(world, **options)
        save_file(model.state_dict(), str(out), metadata={"attributes": ",".join(model.attributes)})
        return stats

    @classmethod
    def describe(cls, location, where):
        if location.startswith("asset:"):
            return (
                "project-trained multi-label oracle on synthetic faces (stand-in for ACE's CelebA "
                "oracle; tasks/assets)"
            )
        return f"attribute oracle {where}"
