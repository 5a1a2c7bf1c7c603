"""The ``CounterfactualMethod`` interface and its hyperparameters.

A method declares its hyperparameters once, as a frozen dataclass ``Params`` whose fields (with
their declared types, the paper's defaults and their valid ranges, ``hparam(...)``) are the
keyword arguments of the method's constructor; the method reads them as ``self.hparams.lr``.

A run builds each method's ``Params`` once (``CounterfactualMethod.configure``), in one order:
the class's defaults (the paper), then the values the method chooses for the task
(``task_defaults``: e.g. a measured CPU setting where the task's models are small project-trained
stand-ins, or the paper's per-dataset row), then the registry entry's preset, then the user's
``--set`` strings or a recorded run's values. Strings are read as each field's declared type and
every value is checked before any work starts, so run.json records concrete values.
"""

from __future__ import annotations

import abc
import dataclasses
import functools
import math
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import torch

from cfbench.api.types import Batch, Counterfactuals
from cfbench.errors import UserError

if TYPE_CHECKING:
    from cfbench.api.task import Task

CHECKS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "positive": (lambda v: v > 0, "must be > 0"),
    "nonnegative": (lambda v: v >= 0, "must be >= 0"),
    "fraction": (lambda v: 0 <= v <= 1, "must lie in [0, 1]"),
    "open_fraction": (lambda v: 0 < v <= 1, "must lie in (0, 1]"),
    "count": (lambda v: v >= 1, "must be at least 1"),
}
_WORDS = {
    "1": True,
    "true": True,
    "yes": True,
    "on": True,
    "0": False,
    "false": False,
    "no": False,
    "off": False,
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
        hints = declared_types(type(self))
        for f in dataclasses.fields(self):
            value, rule = getattr(self, f.name), f.metadata.get("check")
            if not _is_a(value, hints[f.name]):
                raise ValueError(f"{f.name} must be {_type_name(hints[f.name])} (got {value!r})")
            if value is None:
                continue
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"{f.name} must be a finite number (got {value})")
            if isinstance(rule, tuple) and value not in rule:
                raise ValueError(
                    f"{f.name} must be one of {', '.join(map(str, rule))} (got {value!r})"
                )
            if isinstance(rule, str) and not CHECKS[rule][0](value):
                raise ValueError(f"{f.name} {CHECKS[rule][1]} (got {value})")
        self.check()

    def check(self) -> None:
        """Cross-field constraints; raise ValueError with a message."""

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        return {f.name: f.default for f in dataclasses.fields(cls)}

    @classmethod
    def read(cls, name: str, value: Any) -> Any:
        """A ``--set`` string as field ``name``'s declared type (other values pass unchanged and are
        checked by the constructor); ValueError when the text is not of that type."""
        if not isinstance(value, str):
            return (
                float(value)
                if float in _members(declared_types(cls)[name]) and type(value) is int
                else value
            )
        allowed = _members(declared_types(cls)[name])
        if type(None) in allowed and value.lower() == "none":
            return None
        for kind in (bool, int, float, str):
            if kind in allowed:
                try:
                    return _WORDS[value.lower()] if kind is bool else kind(value)
                except (KeyError, ValueError):
                    continue
        raise ValueError(f"'{value}' is not {_type_name(declared_types(cls)[name])}")


class SharedFits(dict):
    """Fits several runs of one process may reuse (a study's g- and h-directions of one source
    share GCD's proxy): a study creates one and hands it to each ``Runner``; a method keys what it
    stores by everything the fit depends on. Outside a study every fit is fresh."""


class CounterfactualMethod(abc.ABC):
    name: ClassVar[str]  # the registry entry it was built as (set by ``METHODS.build``)
    Params: ClassVar[type[HParams]] = HParams

    def __init__(
        self, task: Task, device: torch.device, params: HParams | None = None, **hparams: Any
    ):
        """``params``: the run's built hyperparameters (``configure``); else they are built from
        ``hparams`` over the class defaults (for direct use in code and tests)."""
        self.task = task
        self.device = device
        self.hparams = params if params is not None else self.Params(**hparams)
        self.progress: Callable[[str], None] = lambda status: None  # the runner shows it on its bar
        self.shared_fits: SharedFits | None = None  # set by a study running several methods

    @classmethod
    def task_defaults(cls, task: Task) -> dict[str, Any]:
        """Hyperparameters this method sets for ``task`` over the paper's defaults (before the
        registry preset and the user's values). Recorded in run.json with the resolved values."""
        return {}

    @classmethod
    def configure(
        cls, entry: str, task: Task, preset: dict[str, Any], overrides: dict[str, Any]
    ) -> HParams:
        """The run's ``Params`` for registry entry ``entry``: defaults, then ``task_defaults``, then
        ``preset``, then ``overrides`` (``--set`` strings or recorded values); a UserError names the
        entry and the field."""
        known = cls.Params.defaults()
        values = {**known, **cls.task_defaults(task), **preset}
        for key, value in overrides.items():
            if key not in known:
                raise UserError(
                    f"Method '{entry}' has no hyperparameter '{key}'. "
                    f"Its hyperparameters are: {', '.join(sorted(known)) or 'none'}."
                )
            try:
                values[key] = cls.Params.read(key, value)
            except ValueError as err:
                raise UserError(
                    f"--set {entry}.{key}: {err} (the default is {known[key]!r})."
                ) from None
        try:
            return cls.Params(**values)
        except (ValueError, TypeError) as err:
            raise UserError(
                f"Method '{entry}': {err}. See `cfbench list methods` and the method's "
                "documentation for its hyperparameters."
            ) from None

    @classmethod
    def requires(cls, params: HParams) -> tuple[str, ...]:
        """Task components (roles) this configuration needs; a task without them does not support
        it."""
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


@functools.cache
def declared_types(params: type) -> dict[str, Any]:
    """Each field's declared type (annotations resolved, ``from __future__`` strings included)."""
    return typing.get_type_hints(params)


def _members(kind: Any) -> tuple:
    return (
        typing.get_args(kind)
        if isinstance(kind, types.UnionType) or typing.get_origin(kind) is typing.Union
        else (kind,)
    )


def _is_a(value: Any, kind: Any) -> bool:
    """Whether ``value`` fits a declared type: bool is not a number here, an int is a float."""
    for member in _members(kind):
        if member is type(None) and value is None:
            return True
        if member is bool and isinstance(value, bool):
            return True
        if member is int and isinstance(value, int) and not isinstance(value, bool):
            return True
        if member is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return True
        if member is str and isinstance(value, str):
            return True
    return False


def _type_name(kind: Any) -> str:
    names = {
        bool: "true or false",
        int: "an integer",
        float: "a number",
        str: "text",
        type(None): "none",
    }
    return " or ".join(names.get(m, str(m)) for m in _members(kind))
