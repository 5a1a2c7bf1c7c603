"""The face-identity feature network FVA and FS compare a face and its counterfactual with: cosine
similarity of its features, a pair counting as the same person above 0.5 (ACE's threshold).

``asset:NAME``: a project-trained embedder on the synthetic faces' identities (the stand-in for
the VGGFace2 ResNet-50), trained as a cosine-margin classifier over training identities whose
renders vary pose, scene and every attribute a render draws, so that its features follow the
person and not the smile; returns L2-normalised embeddings B x D.

A path: ACE's FVA network, the VGGFace2 ResNet-50 without its classifier, from the Caffe-converted
pickle ACE loads (``resnet50_ft_weight.pkl``, VGGFace2's release), with ``compute_FVA.py``'s
input pipeline: the 8-bit image resized (PIL, shorter side) to 224, RGB -> BGR, minus the
VGGFace2 mean, no scaling; returns the 2048-d pooled features.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from cfbench.api.component import Component, load_weights
from cfbench.components.classifier import SmallResNet
from cfbench.errors import UserError

THRESHOLD = 0.5  # ACE's compute_FVA.py: the same person when the cosine similarity exceeds it


class VGGFace2Identity(nn.Module):
    """[0, 1] faces -> the VGGFace2 ResNet-50's pooled features (B, 2048), as ACE's FVA reads
    them from PNGs."""

    MEAN_BGR = (91.4953, 103.8827, 131.0912)  # compute_FVA.py's CFDataset.mean_bgr

    def __init__(self):
        super().__init__()
        from cfbench.components.vggface2 import caffe_resnet50

        self.net = caffe_resnet50()

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        """The PNG the counterfactual is saved as, through ``transforms.Resize(224)`` on PIL (for
        the same rounding as ACE's loader), BGR minus the mean, 0-255 scale."""
        from PIL import Image
        from torchvision import transforms

        resize = transforms.Resize(224)
        pixels = (x.detach().clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu()
        images = [
            torch.from_numpy(np.asarray(resize(Image.fromarray(p.numpy()))).copy()) for p in pixels
        ]
        batch = torch.stack(images).permute(0, 3, 1, 2).double().flip(1)
        mean = torch.tensor(self.MEAN_BGR, dtype=torch.float64).view(1, 3, 1, 1)
        return (batch - mean).float().to(x.device)  # as numpy subtracts the float64 mean

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from cfbench.components.vggface2 import trunk

        return trunk(self.net, self.preprocess(x)).flatten(1)


def load_vggface2(path) -> VGGFace2Identity:
    """The pickle of numpy arrays VGGFace2 released (ACE's ``load_state_dict``); a converted
    state dict (.pt/.pth, torchvision names) also loads."""
    import pickle

    model = VGGFace2Identity()
    if str(path).endswith(".pkl"):
        with open(path, "rb") as f:
            weights = pickle.load(f, encoding="latin1")  # noqa: S301 (the release's own format)
        state = {k: torch.from_numpy(np.asarray(v)) for k, v in weights.items()}
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
    own = model.net.state_dict()
    unknown = sorted(set(state) - set(own))
    optional = {k for k in own if k.startswith("fc.") or k.endswith("num_batches_tracked")}
    missing = sorted(set(own) - set(state) - optional)
    if unknown or missing:
        raise UserError(
            f"{path} is not the VGGFace2 ResNet-50 ACE's FVA uses: "
            + (f"unexpected tensors {', '.join(unknown[:3])}; " if unknown else "")
            + (f"missing {', '.join(missing[:3])}" if missing else "")
        )
    own.update({k: v.reshape(own[k].shape) for k, v in state.items()})
    model.net.load_state_dict(own)
    return model


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
    how = (
        "the VGGFace2 ResNet-50 weights ACE's compute_FVA.py loads (resnet50_ft_weight.pkl from "
        "the VGGFace2 release)"
    )
    assets = {"face_identity": {"world": "faces"}}

    @classmethod
    def load(cls, where, needs, shipped):
        if not shipped:
            return load_vggface2(where)
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
        return f"VGGFace2 ResNet-50 (ACE's FVA network) from {where}"
