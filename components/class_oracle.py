"""The class oracle: a second judge of the explained classes, so OFR can tell an edit of the
animal from an edit that only fools the classifier under explanation.

``asset:NAME``: a project-trained VGG-style network (the attribute oracle's architecture, its own
seed; the classifiers it judges are ResNet-style) over the synthetic animals' six classes, trained
on renders whose background tone is drawn independently of the class, so it reads the animal and
not the tone a ``_shortcut`` classifier leans on. It returns logits B x K in the classifier's class
order. A path: a TorchScript module taking [0, 1] images to logits in that order.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional as F

from cfbench.api.component import Component, load_weights
from cfbench.errors import UserError


def train_synthetic(
    world,
    n_train: int = 18000,
    steps: int = 2000,
    batch: int = 64,
    seed: int = 7,
    lr: float = 2e-3,
    max_noise: float = 0.06,
    clutter_rate: float = 0.5,
):
    """Cross-entropy on renders with random background tones (half with clutter) and Gaussian
    pixel noise of a random strength (as the classifiers: speckle is not class evidence)."""
    from cfbench.components.attribute_oracle import OracleNet
    from cfbench.components.training import TRAIN_SEED, as_float, fit

    torch.manual_seed(seed)
    x, y = world.images(TRAIN_SEED + 11, n_train, clutter_rate=clutter_rate)
    model = OracleNet(world.classes)
    gen = torch.Generator().manual_seed(seed)

    def loss(_):
        idx = torch.randint(len(x), (batch,), generator=gen)
        xb = as_float(x[idx])
        sigma = torch.rand(batch, 1, 1, 1, generator=gen) * max_noise
        xb = (xb + sigma * torch.randn(xb.shape, generator=gen)).clamp(0, 1)
        return F.cross_entropy(model.logits(xb), y[idx])

    model.train()
    fit(
        model.parameters(),
        steps,
        loss,
        "class oracle",
        optimizer=lambda p: torch.optim.AdamW(p, lr=lr, weight_decay=1e-4),
    )
    model.eval()
    return model, heldout(model, world)


@torch.no_grad()
def heldout(model, world, n: int = 3000, n_swapped: int = 1200) -> dict:
    """Accuracy per pair on held-out renders (random tones, no clutter), and on scenes drawn with
    their pair partner's background tone (a shortcut reader would fail these)."""
    from cfbench.components.training import HELDOUT_SEED, as_float

    def predict(images):
        return torch.cat([model.logits(as_float(b)).argmax(1) for b in images.split(256)])

    x, y = world.images(HELDOUT_SEED, n)
    right = predict(x) == y
    labels = [world.label_for(i) for i in range(n_swapped)]
    swapped = np.stack(
        [
            world.render(HELDOUT_SEED + 1, i, c, 1.0, tone_of=world.partner(c)).image
            for i, c in enumerate(labels)
        ]
    )
    xs = torch.from_numpy(np.round(swapped * 255).astype(np.uint8)).permute(0, 3, 1, 2)
    ys = torch.tensor(labels)
    right_swapped = predict(xs) == ys
    per_pair, per_pair_swapped = {}, {}
    for c in range(0, len(world.classes), 2):
        pair = f"{world.classes[c]}/{world.classes[world.partner(c)]}"
        members = (y == c) | (y == world.partner(c))
        per_pair[pair] = round(float(right[members].float().mean()), 4)
        members = (ys == c) | (ys == world.partner(c))
        per_pair_swapped[pair] = round(float(right_swapped[members].float().mean()), 4)
    return {
        "heldout_accuracy": round(float(right.float().mean()), 4),
        "heldout_accuracy_per_pair": per_pair,
        "heldout_n": n,
        "partner_tone_accuracy": round(float(right_swapped.float().mean()), 4),
        "partner_tone_accuracy_per_pair": per_pair_swapped,
        "partner_tone_n": n_swapped,
    }


class ClassOracle(Component):
    kind = "class_oracle"
    what = "a class oracle (OFR asks it whether the counterfactual shows the target class)"
    how = "a TorchScript file taking [0, 1] images to logits in the classifier's class order"
    assets = {"animal_oracle": {}}

    @classmethod
    def load(cls, where, needs, shipped):
        if shipped:
            from safetensors import safe_open

            from cfbench.components.attribute_oracle import OracleNet

            with safe_open(str(where), "pt") as f:
                classes = tuple(f.metadata()["classes"].split(","))
            return _Logits(load_weights(OracleNet(classes), where))
        try:
            return torch.jit.load(str(where), map_location="cpu")
        except RuntimeError as err:
            raise UserError(
                f"Cannot load the class oracle {where} as TorchScript ({err.__class__.__name__}); "
                f"provide {cls.how}."
            ) from None

    @classmethod
    def train(cls, out, needs, world, **options):
        from safetensors.torch import save_file

        model, stats = train_synthetic(world, **options)
        save_file(model.state_dict(), str(out), metadata={"classes": ",".join(model.attributes)})
        return stats

    @classmethod
    def describe(cls, location, where):
        if location.startswith("asset:"):
            return (
                "project-trained VGG-style class oracle, trained with background tones independent "
                f"of the class ({location[6:]}, tasks/assets)"
            )
        return f"class oracle {where}"


class _Logits(torch.nn.Module):
    """An OracleNet read as a classifier: logits, not per-attribute probabilities."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.logits(x)
