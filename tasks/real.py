"""Real-data tasks: ImageNet pairs, CelebA and CelebA-HQ smile/age/gender and a CUB-200-2011
class pair.

Data comes from a user-given root and weights (environment variables below), loaded through the
ecosystem's own loaders: torchvision weights, diffusers
``from_pretrained`` and local checkpoint paths. Offline, or with anything missing, loading stops
with a ``UserError`` that names what is missing and how to provide it.

Environment variables:
  CFBENCH_DATA_ROOT     ImageNet: <root>/imagenet/val/<wnid>/*.JPEG, or the flat
  val/ILSVRC2012_val_*.JPEG
                        with <root>/imagenet/LOC_val_solution.csv (Kaggle) or meta.bin
                        (torchvision); CelebA: <root>/celeba/
                        (img_align_celeba/ + list_attr_celeba.txt + list_eval_partition.txt);
                        CelebA-HQ: <root>/CelebAMask-HQ/ (CelebA-HQ-img/ +
                        CelebAMask-HQ-attribute-anno.txt + CelebA-HQ-to-CelebA-mapping.txt +
                        CelebA's list_eval_partition.txt, or the .csv ACE reads);
                        CUB: <root>/CUB_200_2011/ (images/ + images.txt + image_class_labels.txt
                        + train_test_split.txt; the test split is is_training_image == 0)
  CFBENCH_AUTOENCODER   diffusers AutoencoderKL directory or hub id (kl-f8-d16 for SLCF)
  CFBENCH_DIFFUSION_PRIOR  guided-diffusion's ADM checkpoint (CECAS; 256x256_diffusion_uncond.pt,
                        or another with a config.json beside it), or a diffusers DDPM folder
  CFBENCH_RCSB_BRIDGE   I2SB's inpainting latest.pt (RCSB; e.g. inpaint-freeform2030) with its
                        options.pkl or a config.json beside it
  CFBENCH_DIFFAE        a diffusion autoencoder folder in cfbench's layout (GCD)
  CFBENCH_CLASSIFIER    TorchScript classifier for CelebA / CUB (inputs in [0,1]); CelebA: logits
                        (negative, positive) of the attribute; CUB: 200 logits, index = class id - 1
  CFBENCH_CUB_CLASSES   the CUB pair as "<class id>,<class id>" (ids 1..200 as in classes.txt);
                        default "59,62": California Gull <-> Herring Gull, two look-alike gulls
  CFBENCH_SIMSIAM       official SimSiam ResNet-50 checkpoint (for S^3)
  CFBENCH_INCEPTION     torch-fidelity's Inception-v3 weights (for FID and sFID)
  CFBENCH_FACE_IDENTITY  CelebA: the VGGFace2 ResNet-50 of ACE's FVA (resnet50_ft_weight.pkl)
  CFBENCH_CELEBA_ORACLE  CelebA: ACE's attribute oracle checkpoint (models/oracle.pth)
  CFBENCH_CELEBAHQ_ORACLE  CelebA-HQ: ACE's attribute oracle, STEEX's OracleResnet checkpoint;
                        CFBENCH_CELEBAHQ_ORACLE_INPUT once (default) or twice names how its input
                        is normalised (components/attribute_oracle.py says why both exist)
  CFBENCH_SAE           sparse autoencoder on the classifier's penultimate activations (SLCF +
                        SAE, traits): the safetensors file `cfbench sae train --task T` writes
"""

from __future__ import annotations

import itertools
import os
from functools import cached_property
from pathlib import Path

import torch

from cfbench.api.task import Task, TaskSamples
from cfbench.errors import UserError

IMAGENET_PAIRS = {  # task -> ((class index, wnid, name), (class index, wnid, name))
    "zebra_sorrel": ((340, "n02391049", "zebra"), (339, "n02389026", "sorrel")),
    "cheetah_cougar": ((293, "n02130308", "cheetah"), (286, "n02125311", "cougar")),
    "egyptian_persian": ((285, "n02124075", "Egyptian cat"), (283, "n02123394", "Persian cat")),
}
CELEBA_ATTRIBUTES = {
    "celeba_smile": "Smiling",
    "celeba_age": "Young",
    "celebahq_smile": "Smiling",
    "celebahq_age": "Young",
    "celeba_gender": "Male",
    "celebahq_gender": "Male",
}
CUB_DEFAULT_CLASSES = "59,62"  # California Gull, Herring Gull


def data_root() -> Path:
    value = os.environ.get("CFBENCH_DATA_ROOT")
    if not value:
        raise UserError(
            "The dataset root is not configured: set CFBENCH_DATA_ROOT to the directory that holds "
            "imagenet/, celeba/ or CUB_200_2011/."
        )
    path = Path(value).expanduser()
    if not path.is_dir():
        raise UserError(f"The dataset root {path} (from CFBENCH_DATA_ROOT) is not a directory.")
    return path


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

    def settings(self) -> dict:
        """The resolution the images are read at (the released code's for the benchmark)."""
        return {
            "image_size": self.image_size,
            "resize": "shorter side to image_size (antialiased bilinear), then a center crop",
        }

    def _files(self) -> list[tuple[str, Path, int]]:
        raise NotImplementedError

    @cached_property
    def _index(self) -> dict[str, tuple[Path, int]]:
        """Sample id -> (file, label), listed once per task object."""
        return {sid: (path, label) for sid, path, label in self._files()}

    def sample_ids(self, n):
        # Interleave the two classes so any prefix is as balanced as the data allows.
        by_class = [
            [sid for sid, (_, label) in self._index.items() if label == c] for c in self.explained
        ]
        ordered = [
            sid for group in itertools.zip_longest(*by_class) for sid in group if sid is not None
        ]
        return ordered[:n]

    def load(self, ids):
        missing = [i for i in ids if i not in self._index]
        if missing:
            raise UserError(f"Task '{self.name}': unknown sample ids {missing[:3]}.")
        files = [self._index[i][0] for i in ids]
        images = _load_image_files(files, self.image_size)
        return TaskSamples(
            images,
            torch.tensor([self._index[i][1] for i in ids]),
            list(ids),
            files=[str(f) for f in files],
        )

    components = {
        "autoencoder": "env:CFBENCH_AUTOENCODER",
        "diffusion_prior": "env:CFBENCH_DIFFUSION_PRIOR",
        "rcsb_bridge": "env:CFBENCH_RCSB_BRIDGE",
        "simsiam": "env:CFBENCH_SIMSIAM",
        "fid_features": "env:CFBENCH_INCEPTION",
        "sae": "env:CFBENCH_SAE",
        "diffae": "env:CFBENCH_DIFFAE",
        "spurious_vae": "env:CFBENCH_SPURIOUS_VAE",
    }


class ImageNetPairTask(_FolderTask):
    """An ImageNet class pair on the validation split, explaining a torchvision ResNet-50."""

    class_names = tuple(f"imagenet_{i}" for i in range(1000))

    def __init__(
        self,
        pair_name: str,
        device: torch.device = torch.device("cpu"),
        one_direction: int | None = None,
    ):
        super().__init__(device)
        self.name = pair_name
        self.benchmark = f"imagenet/{pair_name}"
        self.spec = IMAGENET_PAIRS[pair_name]
        self.pair = (self.spec[0][0], self.spec[1][0])
        self.description = f"ImageNet val {self.spec[0][2]} <-> {self.spec[1][2]}, ResNet-50"
        self.one_direction = one_direction
        if one_direction is not None:
            source, target = (self.spec[i][2] for i in (one_direction, 1 - one_direction))
            self.name = f"{source}_to_{target}".lower().replace(" cat", "")
            self.description = f"ImageNet val {source} -> {target} only, ResNet-50"

    def _files(self):
        imagenet = data_root() / "imagenet"
        val = imagenet / "val"
        folders = [val / wnid for _, wnid, _ in self.spec]
        if all(f.is_dir() for f in folders):
            return [
                (f"{wnid}/{f.stem}", f, index)
                for (index, wnid, _), folder in zip(self.spec, folders)
                for f in sorted(folder.glob("*.JPEG"))
            ]
        flat = sorted(val.glob("ILSVRC2012_val_*.JPEG"))
        if not flat:
            raise UserError(
                f"Task '{self.name}' needs the ImageNet validation images in {val}, either in "
                f"class folders (val/<wnid>/*.JPEG, here {' and '.join(f.name for f in folders)}) "
                "or "
                "flat as shipped (val/ILSVRC2012_val_00000001.JPEG ...) with a label file; "
                f"found neither."
            )
        labels = _flat_imagenet_labels(imagenet)
        index = {wnid: i for i, wnid, _ in self.spec}
        return [(f.stem, f, index[labels[f.stem]]) for f in flat if labels.get(f.stem) in index]

    components = {**_FolderTask.components, "classifier": "torchvision:resnet50:IMAGENET1K_V1"}


def _flat_imagenet_labels(imagenet: Path) -> dict[str, str]:
    """File stem -> wnid for the flat validation layout, from Kaggle's ``LOC_val_solution.csv`` or
    torchvision's ``meta.bin`` (which ``torchvision.datasets.ImageNet`` writes from the devkit)."""
    kaggle, meta = imagenet / "LOC_val_solution.csv", imagenet / "meta.bin"
    if kaggle.is_file():
        import pandas as pd

        table = pd.read_csv(kaggle)
        return dict(zip(table["ImageId"], table["PredictionString"].str.split().str[0]))
    if meta.is_file():
        from torchvision.datasets.imagenet import load_meta_file

        _, val_wnids = load_meta_file(str(imagenet))
        return {f"ILSVRC2012_val_{i:08d}": wnid for i, wnid in enumerate(val_wnids, start=1)}
    raise UserError(
        f"The flat ImageNet validation images in {imagenet / 'val'} need a label file: "
        f"{kaggle} (Kaggle's, 'ImageId,PredictionString') or {meta} (torchvision's; make it from "
        'ILSVRC2012_devkit_t12.tar.gz with `python -c "from torchvision.datasets.imagenet import '
        f"parse_devkit_archive; parse_devkit_archive('{imagenet}')\"`)."
    )


class _ScriptedClassifierTask(_FolderTask):
    """The classifier is the user's TorchScript file (CFBENCH_CLASSIFIER): no torchvision weights
    exist."""

    components = {**_FolderTask.components, "classifier": "env:CFBENCH_CLASSIFIER"}


class CheckpointTask(_ScriptedClassifierTask):
    """CelebA smile/age/gender at 128 px (as ACE, DiME, GCD's celeba configs and RCSB read it): the
    classifier is a user checkpoint (CFBENCH_CLASSIFIER); the face metrics read ACE's networks
    (CFBENCH_FACE_IDENTITY, CFBENCH_CELEBA_ORACLE) and the dataset's attribute annotations."""

    image_size = 128

    components = {
        **_ScriptedClassifierTask.components,
        "face_identity": "env:CFBENCH_FACE_IDENTITY",
        "attribute_oracle": "env:CFBENCH_CELEBA_ORACLE",
    }

    def __init__(self, task_name: str, device: torch.device = torch.device("cpu")):
        super().__init__(device)
        self.name = task_name
        self.benchmark = "celeba/" + task_name.split("_")[1]
        self.pair = (0, 1)
        self.class_names = ("negative", "positive")
        self.description = (
            f"{task_name}: binary attribute task on a user-provided classifier checkpoint"
        )

    def _image_folder(self) -> Path:
        return data_root() / "celeba" / "img_align_celeba"

    def _files(self):
        """(id, path, label) of the test partition (2); label 1 where the attribute is present."""
        names, rows = self._annotations()
        column = names.index(CELEBA_ATTRIBUTES[self.name])
        return [
            (f.rsplit(".", 1)[0], self._image_folder() / f, int(values[column] == "1"))
            for f, (part, values) in rows.items()
            if part == "2"
        ]

    def _annotations(self):
        """(attribute names, {file name: (partition, values as '1' / '-1')}) of the dataset."""
        root = data_root() / "celeba"
        attrs, split = root / "list_attr_celeba.txt", root / "list_eval_partition.txt"
        _require("CelebA", attrs, split, self._image_folder())
        partition = {name: values[0] for name, values in _fields(split).items()}
        names, rows = _attribute_table(attrs)
        return names, {f: (partition.get(f), values) for f, values in rows.items()}

    @cached_property
    def _correlations(self):
        """ACE's ``get_correlations``: Pearson correlations of every attribute with the task's
        over the training partition (0), absent attributes (-1) as 0."""
        import numpy as np

        names, rows = self._annotations()
        table = np.array(
            [[v == "1" for v in values] for part, values in rows.values() if part == "0"],
            dtype=float,
        )
        query = names.index(CELEBA_ATTRIBUTES[self.name])
        with np.errstate(invalid="ignore", divide="ignore"):
            corr = [np.corrcoef(table[:, query], table[:, i])[0, 1] for i in range(len(names))]
        return names, torch.from_numpy(np.nan_to_num(np.array(corr))), query

    def attribute_correlations(self):
        return self._correlations


class CelebAHQTask(CheckpointTask):
    """CelebA-HQ (CelebAMask-HQ's 30,000 images) smile/age/gender at 256 px, split by the CelebA
    partition of each image's original (as ACE's ``CelebAHQDataset``); MNAC and CD read ACE's
    CelebA-HQ oracle."""

    image_size = 256

    components = {**CheckpointTask.components, "attribute_oracle": "env:CFBENCH_CELEBAHQ_ORACLE"}

    def __init__(self, task_name: str, device: torch.device = torch.device("cpu")):
        super().__init__(task_name, device)
        self.benchmark = "celebahq/" + task_name.split("_")[1]

    def _annotations(self):
        root = data_root() / "CelebAMask-HQ"
        attrs = root / "CelebAMask-HQ-attribute-anno.txt"
        mapping = root / "CelebA-HQ-to-CelebA-mapping.txt"  # 'idx orig_idx orig_file' rows
        split_txt, split_csv = root / "list_eval_partition.txt", root / "list_eval_partition.csv"
        _require("CelebA-HQ", attrs, mapping, self._image_folder())
        if split_txt.exists():
            partition = {name: values[0] for name, values in _fields(split_txt).items()}
        elif split_csv.exists():
            lines = split_csv.read_text().splitlines()[1:]  # image_id,partition
            partition = dict(line.split(",")[:2] for line in lines if line)
        else:
            raise UserError(
                f"CelebA-HQ is incomplete: its split comes from CelebA's partition list, "
                f"{split_txt} (or ACE's {split_csv.name}), which is missing."
            )
        original = {f"{idx}.jpg": v[1] for idx, v in _fields(mapping).items() if len(v) == 2}
        names, rows = _attribute_table(attrs)
        return names, {f: (partition.get(original.get(f)), v) for f, v in rows.items()}

    def _image_folder(self) -> Path:
        return data_root() / "CelebAMask-HQ" / "CelebA-HQ-img"


class CubPairTask(_ScriptedClassifierTask):
    """Two CUB-200-2011 classes (CFBENCH_CUB_CLASSES) on the test split; labels are class id - 1."""

    class_names = tuple(f"cub_{i:03d}" for i in range(1, 201))  # the class ids of classes.txt

    def __init__(self, device: torch.device = torch.device("cpu")):
        super().__init__(device)
        self.name = "cub_pair"
        spec = os.environ.get("CFBENCH_CUB_CLASSES") or CUB_DEFAULT_CLASSES
        try:
            a, b = (int(c) for c in spec.split(","))
            valid = 1 <= a <= 200 and 1 <= b <= 200 and a != b
        except ValueError:
            valid = False
        if not valid:
            raise UserError(
                f"CFBENCH_CUB_CLASSES must be two different CUB class ids 1..200 as in "
                f'classes.txt, e.g. "{CUB_DEFAULT_CLASSES}"; got "{spec}".'
            )
        self.pair = (a - 1, b - 1)
        self.description = (
            f"CUB-200-2011 test split, class {a} <-> {b}, user-provided classifier checkpoint"
        )

    def _files(self):
        return _cub_files(data_root() / "CUB_200_2011", self.pair)


def _require(dataset: str, *paths: Path) -> None:
    for f in paths:
        if not f.exists():
            raise UserError(f"{dataset} is incomplete: {f} is missing.")


def _fields(path: Path, maxsplit: int = -1) -> dict[str, list[str]]:
    """A '<key> <value>...' list file (CelebA's and CUB's metadata) as key -> values; with
    ``maxsplit`` 1 the value is the rest of the line (a file name may hold spaces)."""
    return {
        line[0]: line[1:]
        for line in (ln.split(maxsplit=maxsplit) for ln in path.read_text().splitlines())
        if line
    }


def _attribute_table(path: Path) -> tuple[tuple[str, ...], dict[str, list[str]]]:
    """CelebA's attribute list layout (a count, the names, '<file> 1 -1 ...' rows) as the names
    and file name -> values."""
    lines = path.read_text().splitlines()
    names = tuple(lines[1].split())
    return names, {f[0]: f[1:] for f in (ln.split() for ln in lines[2:]) if f}


def _cub_files(root: Path, labels: tuple[int, ...]):
    """(id, path, label) of the CUB test split restricted to ``labels`` (class id - 1)."""
    names = ("images.txt", "image_class_labels.txt", "train_test_split.txt")
    _require("CUB-200-2011", *(root / n for n in names), root / "images")
    paths, classes, split = (
        _fields(root / n, maxsplit=1 if n == "images.txt" else -1) for n in names
    )
    found = []
    for image, (relative,) in paths.items():
        label = int(classes[image][0]) - 1
        if split[image] == ["0"] and label in labels:
            found.append((relative.rsplit(".", 1)[0], root / "images" / relative, label))
    return found
