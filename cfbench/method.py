"""The ``CounterfactualMethod`` interface and its hyperparameter handling.

Hyperparameters are the keyword arguments of a method's ``__init__`` (defaults from its paper).
``resolve_hparams`` merges a registry preset and user ``--set`` overrides into that signature,
coercing strings to the default's type, so every run records its full, resolved settings.
"""
from __future__ import annotations

import abc
import inspect
from typing import TYPE_CHECKING, Any, ClassVar

import torch

from cfbench.errors import UserError
from cfbench.types import Batch, Counterfactuals

if TYPE_CHECKING:
    from cfbench.tasks.base import Task


class CounterfactualMethod(abc.ABC):
    name: ClassVar[str]

    def __init__(self, task: "Task", device: torch.device, **hparams: Any):
        self.task = task
        self.device = device
        self.hparams = hparams

    @abc.abstractmethod
    def generate(self, batch: Batch) -> Counterfactuals:
        """Counterfactuals for a whole batch; a sample's result must not depend on its batch."""

    def provenance(self) -> dict:
        """Substitutions or stand-ins this method uses (recorded in run.json)."""
        return {}


def hparam_defaults(cls: type) -> dict[str, Any]:
    sig = inspect.signature(cls.__init__)
    return {n: p.default for n, p in sig.parameters.items()
            if p.kind == p.KEYWORD_ONLY and p.default is not inspect.Parameter.empty}


def coerce(value: Any, default: Any, where: str) -> Any:
    """Turn a ``--set`` string into the type of the parameter's default."""
    if not isinstance(value, str) or isinstance(default, str):
        return value
    try:
        if isinstance(default, bool):
            if value.lower() in ("1", "true", "yes", "on"):
                return True
            if value.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(value)
        if isinstance(default, int):
            return int(value)
        if isinstance(default, float):
            return float(value)
        if default is None:
            return _literal(value)
    except ValueError:
        raise UserError(f"{where}: '{value}' is not a valid {type(default).__name__} "
                        f"(the default is {default!r}).") from None
    return value


def _literal(value: str) -> Any:
    for cast in (int, float):
        try:
            return cast(value)
        except ValueError:
            pass
    return {"none": None, "true": True, "false": False}.get(value.lower(), value)


def resolve_hparams(method_name: str, cls: type, preset: dict, overrides: dict[str, str]) -> dict:
    defaults = hparam_defaults(cls)
    resolved = {**defaults, **preset}
    for key, value in overrides.items():
        if key not in defaults:
            raise UserError(f"Method '{method_name}' has no hyperparameter '{key}'. "
                            f"Its hyperparameters are: {', '.join(sorted(defaults)) or 'none'}.")
        resolved[key] = coerce(value, defaults[key], f"--set {method_name}.{key}")
    return resolved
