"""The attribute oracle: a network, separate from the classifier under explanation, that reads
every face attribute, so that MNAC (how many attributes a counterfactual changed) and CD (whether
the changes follow the data's correlations) are measured by a judge the method never saw.

``asset:NAME``: a project-trained multi-label CNN on the synthetic faces (a VGG-style network with
its own seed, unlike the ResNet-style classifiers it judges, as ACE's oracle is a separate
architecture), returning per-attribute probabilities B x A in the order of ``attributes``.

A path: ACE's CelebA oracle (``models/oracle.pth``: a VGGFace2 ResNet-50 trunk fine-tuned on CelebA,
a 1x1 convolution to 128 features and a linear layer to CelebA's 40 attributes), read as
``compute_MNAC.py``'s ``CelebaOracle`` reads an image: the 8-bit PNG in [0, 1], channels swapped
to BGR, minus (131.0912, 103.8827, 91.4953) / 255 in that order (the code's, the RGB mean on BGR
channels), bicubic resize to 224, sigmoid of the 40 logits.

Or ACE's CelebA-HQ oracle (STEEX's ``OracleResnet`` checkpoint, ``{'model_state_dict': ...}``: the
same trunk without the 128-d layer, a linear layer from 2048 features, no mean subtraction, bicubic
resize to 224 inside). ``compute_MNAC.py`` feeds it [-1, 1] images through a ``Normalizer(oracle,
0.5, 0.5)`` imported from a module that does not define one in ACE's release, so its input range
cannot be settled from the code; ``CFBENCH_CELEBAHQ_ORACLE_INPUT`` names the reading:
``once`` (default): the oracle sees [-1, 1], the range STEEX trained it on and scores with
(its ``compute_mnac.py``); ``twice``: ACE's [-1, 1] images through ``models/normalizer.py``'s
``Normalizer`` again, [-3, 1], the literal composition of ACE's released files.
"""

from __future__ import annotations

import functools

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


# list_attr_celeba.txt's column order, the oracle's outputs
CELEBA_ATTRIBUTES = (
    "5_o_Clock_Shadow Arched_Eyebrows Attractive Bags_Under_Eyes Bald Bangs Big_Lips Big_Nose "
    "Black_Hair Blond_Hair Blurry Brown_Hair Bushy_Eyebrows Chubby Double_Chin Eyeglasses Goatee "
    "Gray_Hair Heavy_Makeup High_Cheekbones Male Mouth_Slightly_Open Mustache Narrow_Eyes No_Beard "
    "Oval_Face Pale_Skin Pointy_Nose Receding_Hairline Rosy_Cheeks Sideburns Smiling Straight_Hair "
    "Wavy_Hair Wearing_Earrings Wearing_Hat Wearing_Lipstick Wearing_Necklace Wearing_Necktie Young"
).split()


class CelebAOracle(nn.Module):
    """ACE's CelebA oracle: [0, 1] faces -> probabilities of the 40 CelebA attributes."""

    MEAN = (131.0912, 103.8827, 91.4953)  # oracle_celeba_metrics.py, subtracted after the swap

    def __init__(self):
        super().__init__()
        from cfbench.components.vggface2 import caffe_resnet50

        self.attributes = tuple(CELEBA_ATTRIBUTES)
        self.net = caffe_resnet50()
        self.feat_extract = nn.Conv2d(2048, 128, 1, bias=False)
        self.classifier = nn.Linear(128, len(self.attributes))
        self.register_buffer("mean", torch.tensor(self.MEAN).view(1, 3, 1, 1) / 255)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from cfbench.components.vggface2 import trunk

        x = (x.clamp(0, 1) * 255).round() / 255  # the PNG compute_MNAC.py reads
        x = F.interpolate(x.flip(1) - self.mean, size=(224, 224), mode="bicubic")
        return torch.sigmoid(self.classifier(self.feat_extract(trunk(self.net, x)).flatten(1)))


class CelebAHQOracle(nn.Module):
    """ACE's CelebA-HQ oracle (STEEX's ``OracleResnet``): [0, 1] faces -> probabilities of the 40
    CelebA attributes, the input normalised ``once`` or ``twice`` (see the module's docstring)."""

    READINGS = ("once", "twice")

    def __init__(self, reading: str = "once"):
        super().__init__()
        from cfbench.components.vggface2 import caffe_resnet50

        self.attributes = tuple(CELEBA_ATTRIBUTES)
        self.reading = reading
        self.net = caffe_resnet50()
        self.classifier = nn.Linear(2048, len(self.attributes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from cfbench.components.vggface2 import trunk

        x = (x.clamp(0, 1) * 255).round() / 255 * 2 - 1  # the PNG, ACE's Normalize(0.5, 0.5)
        if self.reading == "twice":
            x = (x - 0.5) / 0.5
        x = F.interpolate(x, size=(224, 224), mode="bicubic", align_corners=False)
        return torch.sigmoid(self.classifier(trunk(self.net, x).flatten(1)))


def _read_checkpoint(path):
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # any unreadable file: name it, whatever torch raised
        raise UserError(
            f"{path} cannot be read as a PyTorch checkpoint ({type(error).__name__}: {error}); an "
            "attribute oracle is ACE's models/oracle.pth (CelebA) or STEEX's OracleResnet "
            "checkpoint (CelebA-HQ)."
        ) from None


def _load_matconvnet_trunk(net: nn.Module, state: dict, path, what: str) -> None:
    """Load VGGFace2 trunk weights named as MatConvNet names them into ``net``; refuse (naming the
    checkpoint) when a layer is missing or foreign."""
    from cfbench.components.vggface2 import torchvision_name

    mapped = {
        torchvision_name(k): v for k, v in state.items() if not k.endswith("num_batches_tracked")
    }
    own = net.state_dict()
    missing = sorted(
        k
        for k in own
        if not k.startswith("fc.") and k not in mapped and not k.endswith("num_batches_tracked")
    )
    if missing or set(mapped) - set(own):
        raise UserError(
            f"{path}: its trunk is not the VGGFace2 ResNet-50 {what} has (missing "
            f"{', '.join(missing[:3]) or 'nothing'})."
        )
    net.load_state_dict({**own, **mapped})


def load_celeba_oracle(path) -> CelebAOracle:
    """ACE's checkpoint: {'feat_extract': MatConvNet-named trunk + feat_extract, 'classifier'}."""
    checkpoint = _read_checkpoint(path)
    if (
        not isinstance(checkpoint, dict)
        or not {"feat_extract", "classifier"} <= set(checkpoint)
        or "feat_extract.weight" not in checkpoint["feat_extract"]
    ):
        raise UserError(
            f"{path} is not ACE's CelebA oracle checkpoint (a dict with 'feat_extract' and "
            "'classifier' state dicts, as models/oracle.pth)."
        )
    model = CelebAOracle()
    trunk_state = dict(checkpoint["feat_extract"])
    model.feat_extract.weight.data.copy_(trunk_state.pop("feat_extract.weight"))
    _load_matconvnet_trunk(model.net, trunk_state, path, "ACE's CelebA oracle")
    model.classifier.load_state_dict(checkpoint["classifier"])
    return model


def load_celebahq_oracle(path, reading: str) -> CelebAHQOracle:
    """STEEX's checkpoint layout: 'model_state_dict' with 'feat_extract.*' and 'classifier.*'."""
    if reading not in CelebAHQOracle.READINGS:
        raise UserError(
            f"CFBENCH_CELEBAHQ_ORACLE_INPUT must be 'once' or 'twice' (how often the [-1, 1] "
            f"normalisation is applied before the CelebA-HQ oracle); got '{reading}'."
        )
    checkpoint = _read_checkpoint(path)
    state = checkpoint.get("model_state_dict") if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict) or "classifier.weight" not in state:
        raise UserError(
            f"{path} is not ACE's CelebA-HQ oracle checkpoint (STEEX's OracleResnet: a dict whose "
            "'model_state_dict' holds 'feat_extract.*' and 'classifier.*')."
        )
    model = CelebAHQOracle(reading)
    prefix = "feat_extract."
    trunk_state = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    _load_matconvnet_trunk(model.net, trunk_state, path, "ACE's CelebA-HQ oracle")
    model.classifier.load_state_dict(
        {k.split(".", 1)[1]: v for k, v in state.items() if k.startswith("classifier.")}
    )
    return model


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
    how = (
        "ACE's CelebA oracle checkpoint (models/oracle.pth of its release) or, for CelebA-HQ, "
        "STEEX's OracleResnet checkpoint"
    )
    assets = {"face_oracle": {"world": "faces"}}

    @classmethod
    def load(cls, where, needs, shipped):
        if not shipped:
            if cls._is_celebahq(where):
                return load_celebahq_oracle(where, cls._celebahq_reading())
            return load_celeba_oracle(where)
        from safetensors import safe_open

        with safe_open(str(where), "pt") as f:
            attributes = tuple(f.metadata()["attributes"].split(","))
        return load_weights(OracleNet(attributes), where)

    @staticmethod
    @functools.cache
    def _is_celebahq(where) -> bool:
        """STEEX's layout (CelebA-HQ) rather than ACE's (CelebA), read once per file."""
        checkpoint = _read_checkpoint(where)
        return isinstance(checkpoint, dict) and "model_state_dict" in checkpoint

    @staticmethod
    def _celebahq_reading() -> str:
        import os

        return os.environ.get("CFBENCH_CELEBAHQ_ORACLE_INPUT") or "once"

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
        if cls._is_celebahq(where):
            return (
                f"ACE's CelebA-HQ attribute oracle (STEEX's OracleResnet) from {where}, input "
                f"normalised {cls._celebahq_reading()} (CFBENCH_CELEBAHQ_ORACLE_INPUT)"
            )
        return f"ACE's CelebA attribute oracle from {where}"
