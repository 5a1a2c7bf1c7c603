"""Real-data tasks: ImageNet pairs and CelebA smile/age (CUB is not wired up yet).

Data comes from a user-given root and weights (environment variables below), loaded through the ecosystem's own loaders: torchvision weights, diffusers
``from_pretrained`` and local checkpoint paths. Offline, or with anything missing, loading stops
with a ``UserError`` that names what is missing and how to provide it.

Environment variables:
  CFBENCH_DATA_ROOT     ImageNet: <root>/imagenet/val/<wnid>/*.JPEG; CelebA: <root>/celeba/
                        (img_align_celeba/ + list_attr_celeba.txt + list_eval_partition.txt);
                        CUB: <root>/CUB_200_2011/ (images/ + images.txt + train_test_split.txt)
  CFBENCH_AUTOENCODER   diffusers AutoencoderKL directory or hub id (kl-f8-d16 for SLCF)
  CFBENCH_CLASSIFIER    checkpoint path of the classifier for CelebA / CUB
  CFBENCH_SIMSIAM       official SimSiam ResNet-50 checkpoint (for S^3)
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from cfbench.errors import UserError
from cfbench.tasks.base import Task, TaskSamples
from cfbench.tasks.models import LatentAutoencoder, Normalize

IMAGENET_PAIRS = {  # task -> ((class index, wnid, name), (class index, wnid, name))
    "zebra_sorrel": ((340, "n02391049", "zebra"), (339, "n02389026", "sorrel")),
    "cheetah_cougar": ((293, "n02130308", "cheetah"), (286, "n02125311", "cougar")),
    "egyptian_persian": ((285, "n02124075", "Egyptian cat"), (283, "n02123394", "Persian cat")),
}
CELEBA_ATTRIBUTES = {"celeba_smile": "Smiling", "celeba_age": "Young"}


def _env_path(var: str, what: str, how: str) -> Path:
    value = os.environ.get(var)
    if not value:
        raise UserError(f"{what} is not configured: set {var} to {how}.")
    path = Path(value).expanduser()
    if not path.exists():
        raise UserError(f"{what} not found at {path} (from {var}). {how[0].upper() + how[1:]}.")
    return path


def data_root() -> Path:
    return _env_path("CFBENCH_DATA_ROOT", "The dataset root",
                     "the directory that holds imagenet/ or celeba/")


class ResizedClassifier(nn.Module):
    """[0,1] images of any size -> resized + normalised input of a torchvision-style model."""

    def __init__(self, model: nn.Module, size: int):
        super().__init__()
        self.model, self.size, self.normalize = model, size, Normalize()

    def forward(self, x):
        if x.shape[-1] != self.size:
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False, antialias=True)
        return self.model(self.normalize(x))


def _load_image_files(files: list[Path], size: int) -> torch.Tensor:
    from PIL import Image
    from torchvision.transforms.v2 import functional as TF

    out = []
    for f in files:
        img = TF.pil_to_tensor(Image.open(f).convert("RGB")).float() / 255
        img = TF.resize(img, size, antialias=True)
        out.append(TF.center_crop(img, size))
    return torch.stack(out)


class _FolderTask(Task):
    """Samples are image files; ids are '<class>/<file stem>'."""

    image_size = 256

    def _files(self) -> list[tuple[str, Path, int]]:
        raise NotImplementedError

    def sample_ids(self, n):
        files = self._files()
        # Interleave the two classes so any prefix is balanced, as on the synthetic tasks.
        by_class = [[f for f in files if f[2] == c] for c in self.pair]
        ordered = [x for pair in zip(*by_class) for x in pair]
        return [sid for sid, _, _ in ordered[:n]]

    def load(self, ids):
        index = {sid: (path, label) for sid, path, label in self._files()}
        missing = [i for i in ids if i not in index]
        if missing:
            raise UserError(f"Task '{self.name}': unknown sample ids {missing[:3]}.")
        images = _load_image_files([index[i][0] for i in ids], self.image_size)
        return TaskSamples(images, torch.tensor([index[i][1] for i in ids]), list(ids))

    def _load_autoencoder(self):
        from diffusers import AutoencoderKL

        source = os.environ.get("CFBENCH_AUTOENCODER")
        if not source:
            raise UserError("SLCF on real images needs the kl-f8-d16 autoencoder: set CFBENCH_AUTOENCODER "
                            "to a diffusers AutoencoderKL directory (or a hub id cached locally).")
        try:
            return LatentAutoencoder(AutoencoderKL.from_pretrained(source, local_files_only=True, low_cpu_mem_usage=False))
        except (OSError, ValueError) as err:
            raise UserError(f"Could not load the autoencoder '{source}' offline ({err}). Download it once "
                            "with network access, or point CFBENCH_AUTOENCODER at a local directory.") from err

    def _load_simsiam(self):
        path = _env_path("CFBENCH_SIMSIAM", "The SimSiam checkpoint",
                         "the official SimSiam ResNet-50 checkpoint (checkpoint_0099.pth.tar)")
        return load_official_simsiam(path)


def load_official_simsiam(path: Path) -> nn.Module:
    """ResNet-50 encoder with its 3-layer projector from the official SimSiam checkpoint format."""
    import torchvision

    model = torchvision.models.resnet50(num_classes=2048, zero_init_residual=True)
    width = model.fc.weight.shape[1]
    model.fc = nn.Sequential(nn.Linear(width, width, bias=False), nn.BatchNorm1d(width), nn.ReLU(inplace=True),
                             nn.Linear(width, width, bias=False), nn.BatchNorm1d(width), nn.ReLU(inplace=True),
                             nn.Linear(width, 2048), nn.BatchNorm1d(2048, affine=False))
    state = torch.load(path, map_location="cpu", weights_only=False)["state_dict"]
    prefix = "module.encoder."
    model.load_state_dict({k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)})

    class Embed(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = ResizedClassifier(model, 224)

        def embed(self, x):
            return self.net(x)

        forward = embed

    return Embed()


class ImageNetPairTask(_FolderTask):
    """An ImageNet class pair on the validation split, explaining a torchvision ResNet-50."""

    class_names = tuple(f"imagenet_{i}" for i in range(1000))

    def __init__(self, pair_name: str, device: torch.device = torch.device("cpu")):
        super().__init__(device)
        self.name = pair_name
        self.spec = IMAGENET_PAIRS[pair_name]
        self.pair = (self.spec[0][0], self.spec[1][0])
        self.description = f"ImageNet val {self.spec[0][2]} <-> {self.spec[1][2]}, ResNet-50"

    def _files(self):
        val = data_root() / "imagenet" / "val"
        found = []
        for index, wnid, _ in self.spec:
            folder = val / wnid
            if not folder.is_dir():
                raise UserError(f"Task '{self.name}' needs ImageNet validation images in {folder} "
                                "(class-per-folder layout: imagenet/val/<wnid>/*.JPEG).")
            found += [(f"{wnid}/{f.stem}", f, index) for f in sorted(folder.glob("*.JPEG"))]
        return found

    def _load_classifier(self):
        import torchvision

        try:
            weights = torchvision.models.ResNet50_Weights.IMAGENET1K_V1
            return ResizedClassifier(torchvision.models.resnet50(weights=weights), 224)
        except Exception as err:  # torchvision raises URLError/RuntimeError when it cannot download
            raise UserError("The ImageNet ResNet-50 weights are not available offline. Run once with network "
                            "access (torchvision caches them under $TORCH_HOME), or copy "
                            f"resnet50-0676ba61.pth into $TORCH_HOME/hub/checkpoints/ ({type(err).__name__}).") from err


class CheckpointTask(_FolderTask):
    """CelebA smile/age: the classifier is a user checkpoint (CFBENCH_CLASSIFIER)."""

    def __init__(self, task_name: str, device: torch.device = torch.device("cpu")):
        super().__init__(device)
        self.name = task_name
        self.pair = (0, 1)
        self.class_names = ("negative", "positive")
        self.description = f"{name}: binary attribute task on a user-provided classifier checkpoint"

    def _files(self):
        return _celeba_files(data_root() / "celeba", CELEBA_ATTRIBUTES[self.name])

    def _load_classifier(self):
        path = _env_path("CFBENCH_CLASSIFIER", f"The classifier checkpoint for '{self.name}'",
                         "a TorchScript file of the classifier under explanation (inputs in [0,1])")
        return torch.jit.load(str(path), map_location="cpu")


def _celeba_files(root: Path, attribute: str):
    """(id, path, label) of the CelebA test split; label 1 where the attribute is present."""
    attrs, split = root / "list_attr_celeba.txt", root / "list_eval_partition.txt"
    for f in (attrs, split, root / "img_align_celeba"):
        if not f.exists():
            raise UserError(f"CelebA is incomplete: {f} is missing.")
    test = {line.split()[0] for line in split.read_text().splitlines() if line.split()[1:] == ["2"]}
    lines = attrs.read_text().splitlines()
    column = lines[1].split().index(attribute) + 1
    found = []
    for line in lines[2:]:
        fields = line.split()
        if fields[0] in test:
            found.append((fields[0].split(".")[0], root / "img_align_celeba" / fields[0], int(fields[column] == "1")))
    return found
