"""Name -> implementation registries for methods, tasks and metrics.

Entries are import strings so that ``cfbench list`` and the CLI start fast and a broken optional
dependency of one method cannot break the others. A preset is an entry with fixed keyword
arguments (e.g. RCSB's A/B/C), so a named variant is one registry line.
"""

from __future__ import annotations

import difflib
import importlib
from dataclasses import dataclass, field
from typing import Any

from cfbench.errors import UserError


@dataclass(frozen=True)
class Entry:
    name: str
    target: str  # "package.module:Attribute"
    preset: dict[str, Any] = field(default_factory=dict)
    summary: str = ""

    def load(self):
        module, attr = self.target.split(":")
        return getattr(importlib.import_module(module), attr)


class Registry:
    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, Entry] = {}

    def add(self, name: str, target: str, summary: str = "", **preset) -> None:
        if name in self._entries:
            raise ValueError(f"{self.kind} '{name}' is registered twice")
        self._entries[name] = Entry(name, target, preset, summary)

    def __contains__(self, name: str) -> bool:
        return name in self._entries

    def names(self) -> list[str]:
        return list(self._entries)

    def entries(self) -> list[Entry]:
        return list(self._entries.values())

    def get(self, name: str) -> Entry:
        if name not in self._entries:
            close = difflib.get_close_matches(name, self._entries, n=3)
            hint = f" Did you mean {', '.join(close)}?" if close else ""
            raise UserError(
                f"Unknown {self.kind} '{name}'.{hint} Known {self.kind}s: "
                f"{', '.join(self._entries)} (see `cfbench list {self.kind}s`)."
            )
        return self._entries[name]

    def build(self, name: str, *args, **kwargs):
        """An instance of entry ``name``: its class called with ``args`` and its preset updated by
        ``kwargs``; the instance's ``name`` is the entry's, so messages name what the user chose."""
        entry = self.get(name)
        obj = entry.load()(*args, **{**entry.preset, **kwargs})
        obj.name = name
        return obj

    def parse_list(self, spec: str) -> list[str]:
        """Comma-separated names; each is checked so a typo fails before any work starts."""
        names = [s.strip() for s in spec.split(",") if s.strip()]
        if not names:
            raise UserError(f"No {self.kind} given: pass a comma-separated list of names.")
        for n in names:
            self.get(n)
        return names


class MethodRegistry(Registry):
    """Methods: an entry's hyperparameters are built once per run (``params``: defaults, the
    method's values for the task, the entry's preset, the user's overrides) and the method is
    constructed from them (``build``)."""

    def params(self, name: str, task, overrides: dict[str, Any] | None = None):
        entry = self.get(name)
        return entry.load().configure(name, task, entry.preset, overrides or {})

    def build(self, name: str, task, device, params=None, **overrides):
        """Method ``name`` for ``task``: with the run's ``params``, or built here from
        ``overrides``."""
        cls = self.get(name).load()
        method = cls(
            task, device, params if params is not None else self.params(name, task, overrides)
        )
        method.name = name
        return method
