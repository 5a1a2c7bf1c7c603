"""The face-identity feature network FVA and FS compare a face and its counterfactual with: cosine
similarity of its features, a pair counting as the same person above 0.5 (ACE's threshold).

``asset:NAME``: a project-trained embedder on the synthetic faces' identities (the stand-in for
the VGGFace2 ResNet-50), trained as a cosine-margin classifier over training identities whose
renders vary pose, scene and every attribute a render draws, so that its features follow the
person and not the smile; returns L2-normalised embeddings B x D.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from cfbench.api.component import Component, load_weights
from cfbench.components.classifier import SmallResNet
from cfbench.errors import UserError

THRESHOLD = 0.5  # ACE's compute_FVA.py: the same person when the cosine similarity exceeds it


class IdentityNet(nn.Module):
    """[0, 1] faces -> unit-norm identity embeddings."""

    def __init__(self, dim: int = 128):
        super().__init__()
        self.backbone = SmallResNet(widths=(16, 32, 64))
        self.project = nn.Linear(self.backbone.out_dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.project(self.backbone.features(x)), dim=1)


def verification(
    model: IdentityNet, images: torch.Tensor, views: int, pairs: int, seed: int
) -> dict:
    """Accuracy at ``THRESHOLD`` on ``pairs`` same-person and ``pairs`` different-person pairs of
    held-out people (``images`` holds ``views`` consecutive renders of each person)."""
    from cfbench.components.training import as_float

    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        emb = torch.cat([model(as_float(b)) for b in images.split(256)])
    people = len(images) // views
    person = torch.randint(people, (pairs,), generator=gen)
    first = torch.randint(views, (pairs,), generator=gen)
    second = (first + torch.randint(1, views, (pairs,), generator=gen)) % views  # another view
    other = (person + torch.randint(1, people, (pairs,), generator=gen)) % people  # another person
    same = (emb[person * views + first] * emb[person * views + second]).sum(1)
    different = (emb[person * views + first] * emb[other * views + second]).sum(1)
    correct = torch.cat([same > THRESHOLD, different <= THRESHOLD]).float()
    return {
        "verification_accuracy": round(float(correct.mean()), 4),
        "pairs": 2 * pairs,
        "same_similarity_mean": round(float(same.mean()), 4),
        "different_similarity_mean": round(float(different.mean()), 4),
        "threshold": THRESHOLD,
    }


def train_synthetic(
    world,
    people: int = 1500,
    views: int = 12,
    steps: int = 2000,
    batch: int = 128,
    seed: int = 2,
    lr: float = 2e-3,
    scale: float = 16.0,
    margin: float = 0.25,
):
    """CosFace: logits s * (cos(embedding, class weight) - m for the true identity)."""
    from cfbench.components.training import HELDOUT_SEED, TRAIN_SEED, as_float, fit

    torch.manual_seed(seed)
    x, who = world.identity_views(TRAIN_SEED + 7, people, views)
    model = IdentityNet()
    weights = nn.Parameter(torch.randn(people, model.project.out_features) * 0.01)
    gen = torch.Generator().manual_seed(seed)

    def loss(_):
        idx = torch.randint(len(x), (batch,), generator=gen)
        xb = as_float(x[idx])
        flip = torch.rand(batch, generator=gen) < 0.5
        xb = torch.where(flip.view(-1, 1, 1, 1), xb.flip(-1), xb)
        cos = model(xb) @ F.normalize(weights, dim=1).T
        cos = cos - margin * F.one_hot(who[idx], people)
        return F.cross_entropy(scale * cos, who[idx])

    model.train()
    fit(
        [*model.parameters(), weights],
        steps,
        loss,
        "face identity",
        optimizer=lambda p: torch.optim.AdamW(p, lr=lr, weight_decay=1e-4),
    )
    model.eval()
    xv, _ = world.identity_views(HELDOUT_SEED + 7, 300, 6)
    return model, {
        **verification(model, xv, 6, 2000, seed),
        "train_people": people,
        "views": views,
        "heldout_people": 300,
    }


class FaceIdentity(Component):
    kind = "face_identity"
    what = "a face-identity feature network (FVA and FS compare faces with it)"
    how = "a file the synthetic tasks ship; the real VGGFace2 ResNet-50 is not supported yet"
    assets = {"face_identity": {"world": "faces"}}

    @classmethod
    def load(cls, where, needs, shipped):
        if not shipped:
            raise UserError(
                f"Loading a real face-identity network ({where}) is not supported yet: only "
                "the synthetic faces' project-trained embedder is."
            )
        return load_weights(IdentityNet(), where)

    @classmethod
    def train(cls, out, needs, world, **options):
        from cfbench.api.component import save_weights

        model, stats = train_synthetic(world, **options)
        save_weights(model, out)
        return stats

    @classmethod
    def describe(cls, location, where):
        if location.startswith("asset:"):
            return (
                "project-trained identity embedder on synthetic faces (stand-in for the VGGFace2 "
                "ResNet-50 of FVA; tasks/assets)"
            )
        return f"face-identity network {where}"
