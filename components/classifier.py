"""The classifier under explanation: B x 3 x H x W images in [0, 1] -> logits B x K.

Locations: ``asset:NAME`` (a synthetic six-way SmallResNet; ``shortcut_classifier`` is trained
with the background tone tied to the class), ``torchvision:ARCH:WEIGHTS`` (a torchvision model
with an enum's weights from torchvision's cache, or a local state-dict file; ImageNet resizing
and normalisation inside), or a file: TorchScript (taking [0, 1] images), or a pickled
``torch.save``d ``nn.Module`` (unpickling runs code from the file: use files you trust; prefer
TorchScript). Every wrapper normalises inside (``cfbench.api.classifier``, which also cuts out
the penultimate features), so methods never need to know what a model expects.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from cfbench.api.classifier import Normalize, Preprocess
from cfbench.api.component import Component, load_weights, save_weights, weights_digest
from cfbench.errors import UserError

SHORTCUT_RHO, SHORTCUT_ANIMAL_NOISE = 0.6, 0.03  # chosen by components/research/shortcut_rho.py


class _Block(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu2 = nn.ReLU()
        self.skip = (
            nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
            if stride != 1 or cin != cout
            else nn.Identity()
        )

    def forward(self, x):
        y = self.relu1(self.bn1(self.conv1(x)))
        return self.relu2(self.bn2(self.conv2(y)) + self.skip(x))


class SmallResNet(nn.Module):
    """ResNet-style backbone for 64 x 64 inputs; ``features`` is the pooled last activation.
    ReLUs are modules (one per use) so module-hooking attributions such as captum's Guided
    Backprop see them."""

    def __init__(self, widths=(16, 32, 64)):
        super().__init__()
        self.normalize = Normalize()
        self.stem = nn.Sequential(
            nn.Conv2d(3, widths[0], 3, 2, 1, bias=False), nn.BatchNorm2d(widths[0]), nn.ReLU()
        )
        layers, cin = [], widths[0]
        for i, w in enumerate(widths):
            layers.append(_Block(cin, w, 1 if i == 0 else 2))
            cin = w
        self.layers = nn.Sequential(*layers)
        self.out_dim = widths[-1]

    def features(self, x):
        h = self.layers(self.stem(self.normalize(x)))
        return h.mean(dim=(2, 3))


class SynthClassifier(nn.Module):
    """Six-way classifier of the synthetic animals; logits B x 6."""

    def __init__(self, num_classes: int = 6):
        super().__init__()
        self.backbone = SmallResNet()
        self.fc = nn.Linear(self.backbone.out_dim, num_classes)

    def forward(self, x):
        return self.fc(self.backbone.features(x))


def train_synthetic(
    world, n_train=18000, steps=1500, batch=64, seed=0, max_noise=0.06, reliance=False, **controls
):
    """A SmallResNet over the world's classes. Every batch gets Gaussian pixel noise of a random
    strength, so speckle (the cheapest adversarial edit) is not class evidence and counterfactual
    edits must be semantic. ``controls`` go to the world's renderer: for the animals half the
    images carry background clutter (``clutter_rate``: the class must be found on the coat),
    ``bg_correlation`` > 0 ties the background tone to the class in that share of the images and
    ``animal_noise`` > 0 shows the pair partner's animal in that share (label and background
    kept). A tone tied to the class alone is not learned while the coat predicts it perfectly
    (rho 0.95: a 1-point drop on swapped tones); with a noisier animal the tone becomes a real
    shortcut, which ``reliance`` measures."""
    from cfbench.components.training import HELDOUT_SEED, TRAIN_SEED, as_float, fit

    torch.manual_seed(seed)
    x, y = world.images(TRAIN_SEED, n_train, **controls)
    model = SynthClassifier(num_classes=len(world.classes))
    gen = torch.Generator().manual_seed(seed)

    def loss(_):
        idx = torch.randint(len(x), (batch,), generator=gen)
        xb = as_float(x[idx])
        sigma = torch.rand(batch, 1, 1, 1, generator=gen) * max_noise
        xb = (xb + sigma * torch.randn(xb.shape, generator=gen)).clamp(0, 1)
        return F.cross_entropy(model(xb), y[idx])

    model.train()
    fit(
        model.parameters(),
        steps,
        loss,
        "classifier",
        optimizer=lambda p: torch.optim.AdamW(p, lr=3e-3, weight_decay=1e-4),
    )
    model.eval()
    stats = {
        "heldout_accuracy": accuracy(model, *world.images(HELDOUT_SEED, 3000)),
        "heldout_n": 3000,
        **controls,
    }
    if "clutter_rate" in controls:
        xv, yv = world.images(HELDOUT_SEED, 3000, clutter_rate=1.0)
        stats["heldout_accuracy_clutter"] = accuracy(model, xv, yv)
    if reliance:
        stats["background_reliance"] = background_reliance(model, world)
    return model, stats


@torch.no_grad()
def accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Accuracy on uint8 images."""
    from cfbench.components.training import as_float

    pred = torch.cat([model(as_float(xb)).argmax(1) for xb in images.split(256)])
    return round(float((pred == labels).float().mean()), 4)


def background_reliance(model: nn.Module, world, n: int = 1200) -> dict:
    """How much a synthetic classifier reads the background tone: held-out accuracy on scenes
    whose background has their own class's tone (``correlated``), on the very same scenes with the
    pair partner's tone (``swapped``) and with a random tone (``random_tone``). ``swap_drop`` =
    correlated - swapped is the shortcut GT_SPUR is read against; a classifier that ignores the
    background has a drop near 0."""
    import numpy as np

    from cfbench.components.training import HELDOUT_SEED

    def rendered(tone, correlation):
        labels = [world.label_for(i) for i in range(n)]
        images = np.stack(
            [
                world.render(HELDOUT_SEED + 1, i, y, correlation, tone_of=tone(y)).image
                for i, y in enumerate(labels)
            ]
        )
        return torch.from_numpy(np.round(images * 255).astype(np.uint8)).permute(
            0, 3, 1, 2
        ), torch.tensor(labels)

    found = {
        "correlated": accuracy(model, *rendered(lambda y: y, 1.0)),
        "swapped": accuracy(model, *rendered(world.partner, 1.0)),
        "random_tone": accuracy(model, *rendered(lambda y: y, 0.0)),
        "n": n,
    }
    found["swap_drop"] = round(found["correlated"] - found["swapped"], 4)
    return found


def _architecture(spec: str) -> tuple[str, str, str, int | None]:
    """``LIB:ARCH:WEIGHTS[:NUM_CLASSES]`` (LIB torchvision or timm) -> its parts."""
    lib, arch, rest = spec.split(":", 2)
    weights, _, classes = (
        rest.rpartition(":") if rest.rpartition(":")[2].isdigit() else (rest, "", "")
    )
    return lib, arch, weights, int(classes) if classes else None


def _torchvision(spec: str) -> nn.Module:
    """``torchvision:ARCH:WEIGHTS[:NUM_CLASSES]`` or ``timm:ARCH:FILE[:NUM_CLASSES]``: WEIGHTS is a
    torchvision enum name (cached by torchvision) or a state-dict file."""
    lib, arch, weights, classes = _architecture(spec)
    extra = {} if classes is None else {"num_classes": classes}
    if lib == "timm":
        try:
            import timm
        except ImportError:
            raise UserError(
                "The classifier is a timm architecture, but timm is not installed: "
                "pip install 'cfbench-vce[timm]' (or pip install timm)."
            ) from None
        if arch not in timm.list_models():
            raise UserError(f"'{arch}' is not a timm architecture (see timm.list_models()).")
        model = timm.create_model(arch, pretrained=False, **extra)
        model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
        return nn.Sequential(Preprocess(224), model)
    import torchvision

    try:
        builder = torchvision.models.get_model_builder(arch)
    except ValueError:
        raise UserError(
            f"'{arch}' is not a torchvision architecture (see torchvision.models.list_models())."
        ) from None
    if Path(weights).is_file():
        model = builder(**extra)
        try:
            model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
        except RuntimeError as err:
            raise UserError(
                f"The weights {weights} do not fit torchvision's {arch}"
                f"{'' if classes is None else f' with {classes} classes'}: "
                f"{str(err).splitlines()[0]}"
            ) from None
    else:
        try:
            member = torchvision.models.get_model_weights(arch)[weights.split(".")[-1]]
        except KeyError:
            raise UserError(
                f"'{weights}' is neither a weights file nor a weights name of torchvision's {arch}."
            ) from None
        try:
            model = builder(weights=member)
        except Exception as err:  # torchvision raises URLError/RuntimeError when it cannot download
            raise UserError(
                f"The torchvision weights {arch} {member} are not available offline. Run once with "
                "network access (torchvision caches them under $TORCH_HOME/hub/checkpoints/), or "
                "copy "
                f"{Path(member.url).name} there ({type(err).__name__})."
            ) from err
    return nn.Sequential(Preprocess(224), model)


class Classifier(Component):
    kind = "classifier"
    what = "the classifier under explanation"
    how = (
        "a TorchScript file taking [0, 1] images, a built-in kind (torchvision:resnet50:"
        "IMAGENET1K_V1|V2, ace-densenet:celeba:<attribute>:<file>, steex-densenet:celebahq:"
        "<attribute>:<file>; `cfbench list classifiers`), or a torch.save'd module"
    )
    # shortcut_classifier: the background tone follows the class in SHORTCUT_RHO of the training
    # images and SHORTCUT_ANIMAL_NOISE of them show the partner's animal.
    assets = {
        "classifier": {"clutter_rate": 0.5, "reliance": True},
        "shortcut_classifier": {
            "clutter_rate": 0.5,
            "bg_correlation": SHORTCUT_RHO,
            "animal_noise": SHORTCUT_ANIMAL_NOISE,
            "reliance": True,
        },
        "smile_classifier": {"world": "smile_faces"},
        "age_classifier": {"world": "age_faces"},
        "face_classifier": {"world": "faces"},  # the four smile x age classes: measures the DiffAE
    }
    channels_last = True

    @classmethod
    def load(cls, where, needs, shipped):
        if shipped:  # as many classes as its head has
            from safetensors import safe_open

            with safe_open(str(where), "pt") as f:
                classes = f.get_slice("fc.weight").get_shape()[0]
            return load_weights(SynthClassifier(classes), where)
        if isinstance(where, str) and where.startswith(("torchvision:", "timm:")):
            return _torchvision(where)
        if isinstance(where, str) and where.startswith(("ace-densenet:", "steex-densenet:")):
            from cfbench.components import densenet_classifiers

            return densenet_classifiers.load(where)
        try:
            return torch.jit.load(str(where), map_location="cpu")
        except RuntimeError:
            pass
        try:  # a pickled module: unpickling runs code from the file
            model = torch.load(str(where), map_location="cpu", weights_only=False)
        except Exception as err:  # torch.load raises many types on a file that is not a checkpoint
            raise UserError(
                f"Cannot load the classifier {where}: it is neither TorchScript nor a torch.save'd "
                f"nn.Module ({type(err).__name__})."
            ) from err
        if not isinstance(model, nn.Module):
            raise UserError(
                f"The classifier file {where} holds a {type(model).__name__}, not a model: save "
                "the "
                "module itself (torch.save(model, path)) or TorchScript, not a state dict."
            )
        return model

    @classmethod
    def train(cls, out, needs, world, **options):
        model, stats = train_synthetic(world, **options)
        save_weights(model, out)
        return stats

    @classmethod
    def describe(cls, location, where):
        if location.startswith("asset:"):
            return f"project-trained SmallResNet on synthetic images ({location[6:]}, tasks/assets)"
        if isinstance(where, str) and where.startswith(("ace-densenet:", "steex-densenet:")):
            from cfbench.components import densenet_classifiers

            return densenet_classifiers.describe(where)
        if isinstance(where, str) and where.startswith("torchvision:"):
            return (
                f"torchvision {where.split(':')[1]} {where.split(':')[2]}: [0, 1] input resized "
                "to 224 (antialiased bilinear), ImageNet mean/std"
            )
        return f"classifier {where}"

    @classmethod
    def stand_in(cls, location):
        return False  # it is the model under explanation, whatever it is

    @classmethod
    def provenance(cls, location, where):
        found = super().provenance(location, where)
        # hash the weights file
        if isinstance(where, str) and where.startswith(("torchvision:", "timm:")):
            file = _torchvision_weights_file(where)
            found["sha256"] = weights_digest(file) if file is not None and file.exists() else None
        if isinstance(where, str) and where.startswith(("ace-densenet:", "steex-densenet:")):
            file = Path(where.split(":", 3)[3]).expanduser()
            found["sha256"] = weights_digest(file) if file.exists() else None
        return found


def _torchvision_weights_file(spec: str) -> Path | None:
    """The local file behind ``torchvision:ARCH:WEIGHTS`` (a path, or torchvision's hub cache)."""
    import torchvision

    lib, arch, weights, _ = _architecture(spec)
    if Path(weights).is_file() or lib == "timm":
        return Path(weights)
    try:
        member = torchvision.models.get_model_weights(arch)[weights.split(".")[-1]]
    except (KeyError, ValueError):
        return None
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(member.url).name
