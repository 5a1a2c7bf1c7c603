"""The ``Component`` interface: one kind of model a task can provide (classifier, autoencoder, ...).

A kind knows its architecture and config, how its shipped synthetic assets are trained (and
what goes into the manifest), how it is loaded from a location, and what its provenance line
says. A task declares its components as ``{role: location}`` (the role is the kind's registry
name); methods and metrics ask the task for a role. Locations:

- ``asset:NAME``  a shipped synthetic asset, ``tasks/assets/NAME`` (file or folder, per kind)
- ``env:VAR``     a user path from an environment variable (real tasks)
- any other text  a path (task files), or a kind's own scheme
(``torchvision:resnet50:IMAGENET1K_V1``)

Several instances of a kind coexist as assets with different names (a second, shortcut
classifier); a kind that belongs to another component (an SAE to its classifier) lists it in
``needs`` and receives the task's instance of it when loaded or trained.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from torch import nn

from cfbench.errors import UserError

if TYPE_CHECKING:
    from cfbench.api.world import SyntheticWorld

# tasks/assets in a checkout, cfbench/tasks/assets when installed: found without importing the
# package
ASSETS = Path(importlib.util.find_spec("cfbench.tasks").submodule_search_locations[0]) / "assets"


def weights_digest(path: Path) -> str:
    """sha256 (16 hex digits) over a weights file, or over every file of a folder with its names."""
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for f in files:
        digest.update(f.relative_to(path).as_posix().encode() if path.is_dir() else b"")
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:16]


def load_weights(model: nn.Module, path: Path) -> nn.Module:
    """``model`` with the state dict of a safetensors file."""
    from safetensors.torch import load_file

    model.load_state_dict(load_file(str(path)))
    return model


def read_torch_file(path: Path, what: str) -> Any:
    """A released ``torch.save`` checkpoint, read without running code from it: tensors and plain
    containers as saved; any other object it pickled (a training library's callback class, an
    optimiser) becomes an inert placeholder, since cfbench reads only the weights. ``what`` names
    the expected file in the error a non-checkpoint gets."""
    import pickle

    import torch

    class _Placeholder:
        def __init__(self, *args, **kwargs):
            pass

        def __setstate__(self, state):
            pass

    plain = {"set", "frozenset", "slice", "complex", "tuple", "list", "dict", "int", "float"}
    plain |= {"bool", "str", "bytes", "bytearray", "range"}

    def allowed(module: str, name: str) -> bool:
        """Only what rebuilds tensors and plain containers resolves to a real object."""
        if module == "torch":
            value = getattr(torch, name, None)
            return (
                name.endswith("Storage")
                or name in ("Size", "device")
                or isinstance(value, torch.dtype)
            )
        return (
            (module == "torch._utils" and name.startswith("_rebuild"))
            or (module == "collections" and name == "OrderedDict")
            or (module == "builtins" and name in plain)
        )

    class _Unpickler(pickle.Unpickler):
        def find_class(self, module, name):
            if allowed(module, name):
                return super().find_class(module, name)
            return type(name, (_Placeholder,), {})

    class _Module:
        Unpickler = _Unpickler
        load = staticmethod(pickle.load)

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        pass  # an object beyond tensors and containers: read again, replacing it
    except Exception as error:
        raise UserError(
            f"{path} cannot be read as a PyTorch checkpoint ({type(error).__name__}: {error}); it "
            f"should be {what}."
        ) from None
    try:
        return torch.load(path, map_location="cpu", weights_only=False, pickle_module=_Module)
    except Exception as error:
        raise UserError(
            f"{path} cannot be read as a PyTorch checkpoint ({type(error).__name__}: {error}); it "
            f"should be {what}."
        ) from None


def state_mismatch(model: nn.Module, state: dict) -> str | None:
    """The first missing, unexpected and mis-shaped keys of a released ``state`` dict against
    ``model`` (None when it fits), for the message that refuses a file."""
    own = model.state_dict()
    missing = [k for k in own if k not in state][:3]
    unexpected = [k for k in state if k not in own][:3]
    shaped = [
        f"{k} {tuple(state[k].shape)} (expected {tuple(own[k].shape)})"
        for k in own
        if k in state and state[k].shape != own[k].shape
    ][:3]
    parts = [
        f"{what}: {', '.join(keys)}"
        for what, keys in (("missing", missing), ("unexpected", unexpected), ("mis-shaped", shaped))
        if keys
    ]
    return "; ".join(parts) or None


def save_weights(model: nn.Module, path: Path) -> None:
    from safetensors.torch import save_file

    save_file(model.state_dict(), str(path))


class Component:
    """A kind of model. Subclasses set the class attributes and implement ``load`` (and ``train``
    if the synthetic tasks ship an instance)."""

    kind: ClassVar[str]  # registry name, also the role tasks declare it under
    what: ClassVar[str]  # for messages: "the autoencoder SLCF edits in"
    how: ClassVar[str] = ""  # for messages: how a user provides one
    needs: ClassVar[tuple[str, ...]] = ()  # roles it belongs to / is trained against
    assets: ClassVar[dict[str, dict[str, Any]]] = {}  # shipped asset name -> training options
    asset_suffix: ClassVar[str] = ".safetensors"  # "" when an asset is a folder
    hub_ids: ClassVar[bool] = False  # a location may be a hub id cached locally (from_pretrained)
    # a generative network (UNet, VAE, DiffAE, bridge): ``--dtype`` and ``--compile`` apply to it
    # through the loaded model's ``numerics`` (``cfbench/numerics.py``)
    generative: ClassVar[bool] = False
    channels_last: ClassVar[bool] = (
        False  # store NHWC: models methods differentiate through hundreds
    )
    # of times per sample run faster so (oneDNN, cuDNN)

    # -- locations ------------------------------------------------------------------------------
    @classmethod
    def asset_path(cls, name: str, root: Path = ASSETS) -> Path:
        return root / f"{name}{cls.asset_suffix}"

    @classmethod
    def resolve(cls, location: str, task_name: str) -> Path | str:
        """The path (or scheme string) a location stands for; UserError when it is missing."""
        if location.startswith("asset:"):
            path = cls.asset_path(location[6:])
            if not path.exists():
                raise UserError(
                    f"The synthetic asset '{path.name}' is missing from {path.parent}: build it "
                    f"with `cfbench assets build --only {location[6:]}` (the manifest there lists "
                    "the assets the repository ships)."
                )
            return path
        if location.startswith("env:"):
            var = location[4:]
            value = os.environ.get(var)
            if not value:
                raise UserError(f"Task '{task_name}' needs {cls.what}: set {var} to {cls.how}.")
            path = Path(value).expanduser()
            if path.exists():
                return path
            if cls.hub_ids and "/" in value and not value.startswith((".", "/", "~")):
                return value
            raise UserError(
                f"{cls.what[0].upper() + cls.what[1:]} for task '{task_name}' was not found "
                f"at {path} (from {var}); set {var} to {cls.how}."
            )
        if ":" in location.split("/")[0] and not Path(location).exists():
            return location  # a kind's own scheme
        path = Path(location).expanduser()
        if not path.exists():
            raise UserError(
                f"{cls.what[0].upper() + cls.what[1:]} for task '{task_name}' was not found at "
                f"{path}; it should be {cls.how}."
            )
        return path

    @classmethod
    def available(cls, location: str) -> bool:
        """Whether a location can be resolved without error (used to pick runnable methods)."""
        try:
            cls.resolve(location, "")
        except UserError:
            return False
        return True

    # -- what a kind implements -----------------------------------------------------------------
    @classmethod
    def load(cls, where: Path | str, needs: dict[str, nn.Module], shipped: bool) -> Any:
        """The model at a resolved location; ``shipped`` is True for the synthetic assets."""
        raise NotImplementedError

    @classmethod
    def train(
        cls, out: Path, needs: dict[str, nn.Module], world: SyntheticWorld, **options
    ) -> dict:
        """Train a shipped asset into ``out`` (the path ``asset_path`` gives) on images of
        ``world``; returns its held-out measurements for the manifest."""
        raise NotImplementedError(f"{cls.kind} has no training recipe for the synthetic tasks")

    @classmethod
    def describe(cls, location: str, where: Path | str) -> str:
        """One provenance line for run.json and captions."""
        if location.startswith("asset:"):
            return f"project-trained {cls.kind} ({location[6:]}, tasks/assets)"
        return f"{cls.kind} from {where}"

    @classmethod
    def stand_in(cls, location: str) -> bool:
        """Whether numbers computed with it stand in for the paper's model (the synthetic assets
        do)."""
        return location.startswith("asset:")

    @classmethod
    def provenance(cls, location: str, where: Path | str) -> dict:
        digest = weights_digest(where) if isinstance(where, Path) and where.exists() else None
        return {
            "location": location,
            "description": cls.describe(location, where),
            "sha256": digest,
            "stand_in": cls.stand_in(location),
        }
