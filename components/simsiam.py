"""SimSiam (Chen & He 2021): the embedding S^3 compares (and, on synthetic tasks, FID's features).

Synthetic tasks ship a small project-trained SimSiam (a stand-in, recorded as such); real tasks
load the official ResNet-50 SimSiam checkpoint (``checkpoint_0099.pth.tar``).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from cfbench.api.classifier import Preprocess
from cfbench.api.component import Component, load_weights, save_weights
from cfbench.components.classifier import SmallResNet


class SimSiam(nn.Module):
    """Backbone + projector; the predictor is used only in training."""

    def __init__(self, dim: int = 128, pred_dim: int = 32):
        super().__init__()
        self.backbone = SmallResNet()
        w = self.backbone.out_dim
        self.projector = nn.Sequential(
            nn.Linear(w, w, bias=False),
            nn.BatchNorm1d(w),
            nn.ReLU(),
            nn.Linear(w, dim, bias=False),
            nn.BatchNorm1d(dim, affine=False),
        )
        self.predictor = nn.Sequential(
            nn.Linear(dim, pred_dim, bias=False),
            nn.BatchNorm1d(pred_dim),
            nn.ReLU(),
            nn.Linear(pred_dim, dim),
        )

    def embed(self, x):
        """Encoder with projector: the embedding S^3 compares."""
        return self.projector(self.backbone.features(x))

    forward = embed


def load_official(path) -> nn.Module:
    """ResNet-50 encoder with its 3-layer projector from the official SimSiam checkpoint format."""
    import torchvision

    model = torchvision.models.resnet50(num_classes=2048, zero_init_residual=True)
    width = model.fc.weight.shape[1]
    model.fc = nn.Sequential(
        nn.Linear(width, width, bias=False),
        nn.BatchNorm1d(width),
        nn.ReLU(inplace=True),
        nn.Linear(width, width, bias=False),
        nn.BatchNorm1d(width),
        nn.ReLU(inplace=True),
        nn.Linear(width, 2048),
        nn.BatchNorm1d(2048, affine=False),
    )
    state = torch.load(path, map_location="cpu", weights_only=False)["state_dict"]
    prefix = "module.encoder."
    model.load_state_dict({k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)})
    return nn.Sequential(Preprocess(224), model)


def _augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """SimSiam views: per-sample random resized crop, horizontal flip and mild brightness jitter
    (no hue/saturation jitter: coat colour is class evidence here, the features should keep it)."""
    from torchvision.transforms.v2 import functional as TF

    out = []
    for img in x:
        scale = float(torch.empty(1).uniform_(0.4, 1.0, generator=gen))
        side = max(16, int(round(64 * math.sqrt(scale))))
        top, left = (int(torch.randint(0, 64 - side + 1, (1,), generator=gen)) for _ in range(2))
        v = TF.resized_crop(img, top, left, side, side, [64, 64], antialias=True)
        if torch.rand(1, generator=gen) < 0.5:
            v = TF.horizontal_flip(v)
        v = TF.adjust_brightness(v, float(torch.empty(1).uniform_(0.8, 1.2, generator=gen)))
        out.append(v.clamp(0, 1))
    return torch.stack(out)


def train_synthetic(world, n_train=12000, steps=500, batch=128, seed=0):
    from cfbench.components.training import HELDOUT_SEED, TRAIN_SEED, as_float, fit

    torch.manual_seed(seed)
    x, y = world.images(TRAIN_SEED + 2, n_train)
    model = SimSiam()
    gen = torch.Generator().manual_seed(seed)

    def loss(_):
        xb = as_float(x[torch.randint(len(x), (batch,), generator=gen)])
        z1, z2 = model.embed(_augment(xb, gen)), model.embed(_augment(xb, gen))
        p1, p2 = model.predictor(z1), model.predictor(z2)
        return (
            -(
                F.cosine_similarity(p1, z2.detach()).mean()
                + F.cosine_similarity(p2, z1.detach()).mean()
            )
            / 2
        )

    model.train()
    fit(
        model.parameters(),
        steps,
        loss,
        "simsiam",
        optimizer=lambda p: torch.optim.AdamW(p, lr=1e-3, weight_decay=1e-4),
    )
    model.eval()
    xv, yv = world.images(HELDOUT_SEED, 1200)
    with torch.no_grad():
        e = F.normalize(torch.cat([model.embed(as_float(b)) for b in xv.split(256)]), dim=1)
    # k-NN (k=1, leave-one-out) accuracy on held-out embeddings: evidence the features are not
    # collapsed.
    sim = e @ e.T
    sim.fill_diagonal_(-2)
    knn = float((yv[sim.argmax(1)] == yv).float().mean())
    return model, {"heldout_knn1_accuracy": knn, "embedding_std": float(e.std(0).mean())}


class SimSiamEncoder(Component):
    kind = "simsiam"
    what = "the SimSiam encoder S^3 uses"
    how = "the official SimSiam ResNet-50 checkpoint (checkpoint_0099.pth.tar)"
    assets = {"simsiam": {}, "face_simsiam": {"world": "faces"}}

    @classmethod
    def load(cls, where, needs, shipped):
        if shipped:
            return load_weights(SimSiam(), where)
        return load_official(where)

    @classmethod
    def train(cls, out, needs, world, **options):
        model, stats = train_synthetic(world, **options)
        save_weights(model, out)
        return stats

    @classmethod
    def describe(cls, location, where):
        if location.startswith("asset:"):
            return (
                "project-trained SimSiam on synthetic images (stand-in for ResNet-50 SimSiam; "
                "tasks/assets)"
            )
        return f"official SimSiam ResNet-50 checkpoint {where}"
