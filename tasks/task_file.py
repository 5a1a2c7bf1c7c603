"""Bring-your-own task: a TOML file declares the data, the class pair and the models.

``cfbench run --task path/to/task.toml`` (or ``--task NAME`` for ``NAME.toml`` in
``$CFBENCH_TASK_DIR``, default ``./cfbench_tasks``; ``cfbench list tasks`` lists those). Paths in
the file are relative to the file. A complete example::

    name = "my_birds"                       # optional; default: the file name
    description = "gulls, my ResNet-18"
    image_size = 64                         # images are resized (shorter side) and centre-cropped

    [data]
    folder = "images"                       # ImageFolder layout: images/<class>/<file>.png ...
    # csv = "labels.csv"                    # ... or a CSV with columns path,label (label: a class
    name)
    classes = ["california_gull", "herring_gull"]   # the classifier's output order (default:
    sorted folders); for a classifier with more outputs, name each class's output index:
    # classes = {california_gull = 0, herring_gull = 7}
    pair = ["california_gull", "herring_gull"]      # the two classes flipped into each other
    direction = "both"                      # or "forward": only the first class is explained

    [classifier]                            # exactly one of:
    torchscript = "classifier.pt"           # TorchScript taking [0, 1] images (preferred)
    # module = "classifier.pth"             # a torch.save'd nn.Module: unpickling runs code from
    the file
    # torchvision = "resnet18"              # an architecture name with weights = "w.pth" and
    num_classes = 2
    # timm = "convnext_tiny"                # (timm is an optional extra) with weights and
    num_classes

    [components]                            # optional; each a path (see `cfbench list components`)
    autoencoder = "ae/"                     # diffusers AutoencoderKL folder (SLCF)
    rcsb_bridge = "i2sb/latest.pt"          # I2SB inpainting bridge (RCSB)
    diffusion_prior = "prior/"              # ADM file or diffusers DDPM folder (CECAS, RCSB's SGM)

    [masks]                                 # optional per-image ground truth: <folder>/<sample
    id>.png
    causal = "masks/causal"                 # switches on GT_IN and AUROC
    spurious = "masks/spurious"             # switches on GT_SPUR

Sample ids are ``<class>/<file stem>`` (ImageFolder) or the CSV path without its extension. A
torchvision or timm classifier gets ImageNet normalisation at its architecture's input size; a
TorchScript or pickled module receives [0, 1] images of ``image_size`` as they are. run.json
records the file's content and the sha256 of every weights file.
"""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

import torch

from cfbench.errors import UserError
from cfbench.tasks.real import _FolderTask

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"}
CLASSIFIER_KEYS = ("torchscript", "module", "torchvision", "timm")


class FileTask(_FolderTask):
    has_ground_truth = False

    def __init__(self, path: str | Path, device: torch.device = torch.device("cpu")):
        super().__init__(device)
        self.path = Path(path).expanduser()
        where = f"task file {self.path}"
        try:
            self.text = self.path.read_text()
            spec = tomllib.loads(self.text)
        except OSError as err:
            raise UserError(f"Cannot read the {where}: {err.strerror}.") from None
        except tomllib.TOMLDecodeError as err:
            raise UserError(f"The {where} is not valid TOML: {err}.") from None
        self.root = self.path.parent
        self.where = where
        known = {"name", "description", "image_size", "data", "classifier", "components", "masks"}
        if unknown := sorted(set(spec) - known):
            raise UserError(
                f"The {where} has unknown key(s) {', '.join(unknown)}; known: "
                f"{', '.join(sorted(known))}."
            )
        self.name = str(spec.get("name", self.path.stem))
        self.description = str(spec.get("description", f"task file {self.path.name}"))
        self.image_size = self._int(spec, "image_size", 224)
        data = self._table(spec, "data", required=True)
        self._data = data
        self.class_names = self._class_names(data)
        pair = data.get("pair")
        if not (
            isinstance(pair, list)
            and len(pair) == 2
            and all(p in self.class_names for p in pair)
            and pair[0] != pair[1]
        ):
            raise UserError(
                f"The {where} needs data.pair: two different class names out of "
                f"{', '.join(self.class_names)} (got {pair!r})."
            )
        self.pair = tuple(self.class_names.index(p) for p in pair)
        direction = data.get("direction", "both")
        if direction not in ("both", "forward"):
            raise UserError(
                f'data.direction in the {where} must be "both" or "forward" (got {direction!r}).'
            )
        self.one_direction = 0 if direction == "forward" else None
        components = {
            "classifier": self._classifier_location(self._table(spec, "classifier", required=True))
        }
        for role, value in self._table(spec, "components").items():
            from cfbench.catalog import COMPONENTS

            if role not in COMPONENTS or role == "classifier":
                raise UserError(
                    f"[components] in the {where} names '{role}'; components are "
                    f"{', '.join(n for n in COMPONENTS.names() if n != 'classifier')}."
                )
            components[role] = str(self._path(value, f"components.{role}"))
        self.components = components
        self.mask_folders = {
            k: self._path(v, f"masks.{k}") for k, v in self._table(spec, "masks").items()
        }
        if unknown := sorted(set(self.mask_folders) - {"causal", "spurious", "object"}):
            raise UserError(
                f"[masks] in the {where} may hold causal, spurious and object (got "
                f"{', '.join(unknown)})."
            )
        self.ground_truth_regions = tuple(self.mask_folders)

    # -- reading the file -------------------------------------------------------------------------
    def _table(self, spec, key, required=False) -> dict:
        value = spec.get(key, {} if not required else None)
        if not isinstance(value, dict):
            raise UserError(
                f"The {self.where} needs a [{key}] table (see `cfbench.tasks.task_file` for an "
                "example)."
            )
        return value

    def _int(self, spec, key, default) -> int:
        value = spec.get(key, default)
        if not isinstance(value, int) or value < 8:
            raise UserError(
                f"{key} in the {self.where} must be an integer of at least 8 (got {value!r})."
            )
        return value

    def _path(self, value, key) -> Path:
        if not isinstance(value, str):
            raise UserError(f"{key} in the {self.where} must be a path (got {value!r}).")
        path = (self.root / value).expanduser()
        if not path.exists():
            raise UserError(f"{key} in the {self.where} points to {path}, which does not exist.")
        return path

    def _class_names(self, data) -> tuple[str, ...]:
        """Class names by classifier output index; a table ``{name = index}`` leaves the other
        outputs unnamed ("output <i>")."""
        classes = data.get("classes")
        if classes is None:
            return tuple(self._folder_classes(data))
        if isinstance(classes, dict):
            if not classes or not all(
                isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in classes.values()
            ):
                raise UserError(
                    f"data.classes in the {self.where} maps each class name to its classifier "
                    f"output index, a non-negative integer (got {classes!r})."
                )
            if len(set(classes.values())) != len(classes):
                raise UserError(f"data.classes in the {self.where} gives two classes one output.")
            names = [f"output {i}" for i in range(max(classes.values()) + 1)]
            for name, index in classes.items():
                names[index] = str(name)
            self.declared_outputs = True
            return tuple(names)
        if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
            raise UserError(
                f"data.classes in the {self.where} must be a list of class names in the "
                f"classifier's output order, or a table {{name = output index}} (got {classes!r})."
            )
        if len(set(classes)) != len(classes):
            raise UserError(f"data.classes in the {self.where} names a class twice.")
        return tuple(classes)

    declared_outputs = False  # data.classes named output indices

    def check(self):
        """The classifier's output count matches the classes; warn when it disagrees with most
        labels of a class (classes out of the classifier's order)."""
        ids = self.sample_ids(None)
        probe = [[i for i in ids if self._index[i][1] == c][:8] for c in self.pair]
        samples = self.load([i for group in probe for i in group])
        with torch.no_grad():
            logits = self.classifier(samples.images.to(self.device))
        outputs = logits.shape[1]
        if outputs != len(self.class_names) and not (
            self.declared_outputs and outputs > len(self.class_names)
        ):
            raise UserError(
                f"The classifier of the {self.where} has {outputs} outputs, but the file names "
                f"{len(self.class_names)} classes ({', '.join(self.class_names)}), so a label "
                "cannot be matched to an output. Name each class's output index in [data], e.g. "
                f"classes = {{{self.class_names[self.pair[0]]} = 0, "
                f"{self.class_names[self.pair[1]]} = 1}}."
            )
        predicted = logits.argmax(1).cpu()
        for c in self.pair:
            mine = samples.labels == c
            wrong = int((predicted[mine] != c).sum())
            if wrong * 2 > int(mine.sum()):
                common = int(predicted[mine].mode().values)
                print(
                    f"Warning: the classifier puts {wrong} of the first {int(mine.sum())} "
                    f"'{self.class_names[c]}' images in another class (mostly output {common}, "
                    f"not {c}): check that data.classes follows the classifier's output order.",
                    file=sys.stderr,
                )

    def _folder_classes(self, data) -> list[str]:
        if "folder" not in data:
            raise UserError(f"data.classes is required in the {self.where} when the data is a CSV.")
        return sorted(p.name for p in self._folder(data).iterdir() if p.is_dir())

    def _folder(self, data) -> Path:
        folder = self._path(data["folder"], "data.folder")
        if not folder.is_dir():
            raise UserError(
                f"data.folder in the {self.where} must be a folder of class folders ({folder} is "
                "a file)."
            )
        return folder

    def _classifier_location(self, table) -> str:
        given = [k for k in CLASSIFIER_KEYS if k in table]
        if len(given) != 1:
            raise UserError(
                f"[classifier] in the {self.where} needs exactly one of "
                f"{', '.join(CLASSIFIER_KEYS)} "
                f"(got {', '.join(given) or 'none'})."
            )
        kind = given[0]
        if kind in ("torchscript", "module"):
            return str(self._path(table[kind], f"classifier.{kind}"))
        weights = (
            self._path(table.get("weights", ""), "classifier.weights")
            if "weights" in table
            else None
        )
        if weights is None:
            raise UserError(
                f'classifier.{kind} in the {self.where} needs weights = "<state-dict file>" '
                "(cfbench does not download weights)."
            )
        classes = table.get("num_classes", len(self.class_names))
        if not isinstance(classes, int) or isinstance(classes, bool) or classes < 2:
            raise UserError(
                f"classifier.num_classes in the {self.where} must be an integer of at least 2 "
                f"(got {classes!r})."
            )
        return f"{kind}:{table[kind]}:{weights}:{int(classes)}"

    # -- the Task interface
    # -------------------------------------------------------------------------
    def _files(self):
        data = self._data
        if ("folder" in data) == ("csv" in data):
            raise UserError(
                f"[data] in the {self.where} needs exactly one of folder (ImageFolder layout) or "
                "csv."
            )
        found = []
        if "folder" in data:
            folder = self._folder(data)
            for label, name in enumerate(self.class_names):
                for f in sorted((folder / name).glob("*")) if (folder / name).is_dir() else []:
                    if f.suffix.lower() in IMAGE_SUFFIXES:
                        found.append((f"{name}/{f.stem}", f, label))
        else:
            import pandas as pd

            table = pd.read_csv(self._path(data["csv"], "data.csv"))
            if not {"path", "label"} <= set(table.columns):
                raise UserError(
                    f"The CSV of the {self.where} needs columns path and label (has "
                    f"{', '.join(table.columns)})."
                )
            for path, label in zip(table["path"], table["label"]):
                if str(label) not in self.class_names:
                    raise UserError(
                        f"The CSV of the {self.where} labels {path} as '{label}', not one of "
                        f"{', '.join(self.class_names)}."
                    )
                found.append(
                    (
                        str(Path(path).with_suffix("")),
                        self.root / path,
                        self.class_names.index(str(label)),
                    )
                )
        keep = self.explained
        found = [f for f in found if f[2] in keep]
        if not found:
            raise UserError(
                f"The {self.where} lists no images of "
                f"{' or '.join(self.class_names[c] for c in keep)}."
            )
        return found

    def load(self, ids):
        samples = super().load(ids)
        for region, folder in self.mask_folders.items():
            samples.gt_masks[region] = _masks(folder, ids, self.image_size, region, self.where)
        return samples

    def settings(self) -> dict:
        return {"task_file": str(self.path.resolve()), "task_file_content": self.text}


def _masks(folder: Path, ids: list[str], size: int, region: str, where: str) -> torch.Tensor:
    from PIL import Image
    from torchvision.transforms.v2 import functional as TF

    from cfbench.results import file_stem

    out = []
    for sid in ids:
        candidates = [folder / f"{sid}.png", folder / f"{file_stem(sid)}.png"]
        found = next((c for c in candidates if c.is_file()), None)
        if found is None:
            raise UserError(
                f"The {region} mask of sample '{sid}' is missing: expected {candidates[0]} "
                f"({where})."
            )
        m = TF.pil_to_tensor(Image.open(found).convert("L")).float() / 255
        m = TF.center_crop(
            TF.resize(m, size, antialias=False, interpolation=TF.InterpolationMode.NEAREST), size
        )
        out.append((m > 0.5).float())
    return torch.stack(out)
