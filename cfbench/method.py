"""The ``CounterfactualMethod`` interface and its hyperparameters.

A method declares its hyperparameters once, as a frozen dataclass ``Params`` whose fields (with
the paper's defaults and their valid ranges, ``hparam(...)``) are the keyword arguments of the
method's constructor; the method reads them as ``self.hparams.lr``. ``resolve_hparams`` merges a
registry preset and the user's ``--set`` overrides (strings coerced to the default's type) and
checks every range before any work starts, naming the registered entry in its errors.
"""
from __future__ import annotations

import abc
import dataclasses
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar

import torch

from cfbench.errors import UserError
from cfbench.types import Batch, Counterfactuals

if TYPE_CHECKING:
    from cfbench.tasks.base import Task

CHECKS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "positive": (lambda v: v > 0, "must be > 0"),
    "nonnegative": (lambda v: v >= 0, "must be >= 0"),
    "fraction": (lambda v: 0 <= v <= 1, "must lie in [0, 1]"),
    "open_fraction": (lambda v: 0 < v <= 1, "must lie in (0, 1]"),
    "count": (lambda v: v >= 1, "must be at least 1"),
}


def hparam(default: Any, check: str | tuple[str, ...] | None = None, doc: str = "") -> Any:
    """A hyperparameter with its default and valid range: a name from ``CHECKS`` or a tuple of
    allowed values."""
    return dataclasses.field(default=default, metadata={"check": check, "doc": doc})


@dataclasses.dataclass(frozen=True)
class HParams:
    """Base of every method's ``Params``: checks each field against its declared range (and that
    numbers are finite) on construction. Subclasses add cross-field checks in ``check``."""

    def __post_init__(self):
        for f in dataclasses.fields(self):
            value, rule = getattr(self, f.name), f.metadata.get("check")
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"{f.name} must be a finite number (got {value})")
            if isinstance(rule, tuple) and value not in rule:
                raise ValueError(f"{f.name} must be one of {', '.join(map(str, rule))} (got {value!r})")
            if isinstance(rule, str) and not CHECKS[rule][0](value):
                raise ValueError(f"{f.name} {CHECKS[rule][1]} (got {value})")
        self.check()

    def check(self) -> None:
        """Cross-field constraints; raise ValueError with a message."""


class CounterfactualMethod(abc.ABC):
    name: ClassVar[str]            # the registry entry it was built as (set by ``METHODS.build``)
    Params: ClassVar[type[HParams]] = HParams

    def __init__(self, task: "Task", device: torch.device, **hparams: Any):
        self.task = task
        self.device = device
        self.hparams = self.Params(**hparams)
        self.progress: Callable[[str], None] = lambda status: None   # the runner shows it on its bar

    @classmethod
    def requires(cls, params: HParams) -> tuple[str, ...]:
        """Task components (roles) this configuration needs; a task without them does not support it."""
        return ("classifier",)

    @abc.abstractmethod
    def generate(self, batch: Batch) -> Counterfactuals:
        """Counterfactuals for a whole batch; a sample's result must not depend on its batch."""

    def fit(self, sample_ids: list[str], seed: int, store: Path) -> dict:
        """Fit what all samples share (a global method's directions) once per run, before any sample
        is generated, into ``store`` (a folder of the run directory), or load it from there when an
        earlier session fitted it. Returns the fit's record for run.json; its ``amortised`` entry
        (source class -> {"nfe", "seconds"}) is spread over that class's samples when the run is
        summarised. Per-sample methods fit nothing."""
        return {}

    def provenance(self) -> dict:
        """Substitutions or stand-ins this method uses (recorded in run.json)."""
        return {}


def hparam_defaults(cls: type[CounterfactualMethod]) -> dict[str, Any]:
    return {f.name: f.default for f in dataclasses.fields(cls.Params)}


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


def resolve_hparams(method_name: str, cls: type[CounterfactualMethod], preset: dict,
                    overrides: dict[str, Any]) -> dict:
    """The full, checked hyperparameters of registry entry ``method_name``: defaults, then the
    entry's preset, then ``overrides`` (``--set`` strings or recorded values)."""
    defaults = hparam_defaults(cls)
    resolved = {**defaults, **preset}
    for key, value in overrides.items():
        if key not in defaults:
            raise UserError(f"Method '{method_name}' has no hyperparameter '{key}'. "
                            f"Its hyperparameters are: {', '.join(sorted(defaults)) or 'none'}.")
        resolved[key] = coerce(value, defaults[key], f"--set {method_name}.{key}")
    try:
        cls.Params(**resolved)
    except (ValueError, TypeError) as err:
        raise UserError(f"Method '{method_name}': {err}. See `cfbench list methods` and the method's "
                        "documentation for its hyperparameters.") from None
    return resolved
