"""How a run computes its generative networks (``--dtype``, ``--compile``): a named, recorded
choice, never a silent one.

``--dtype`` (float32 default, bfloat16, float16; per component as ``ROLE=DTYPE,...``) runs the
generative networks (UNets, DiffAE, VAE, bridge: the components marked ``generative``) under
autocast at that dtype, their outputs cast back to float32; classifiers, metrics and every
method's own arithmetic stay float32. ``--compile [BACKEND]`` wraps the same networks in
``torch.compile`` (inductor by default; its graphs are cached on disk, so a resumed run does not
compile again); a backend that is missing or fails falls back to eager with one warning line, and
the seconds spent compiling are recorded apart from the per-counterfactual time.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from cfbench.errors import UserError

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
BACKENDS = ("inductor", "aot_eager", "eager")


def parse_dtypes(text: str) -> tuple[str, dict[str, str]]:
    """``DTYPE`` or ``DTYPE,ROLE=DTYPE,...`` -> (default, per role)."""
    default, per_role = "float32", {}
    for item in [t.strip() for t in text.split(",") if t.strip()]:
        role, eq, value = item.rpartition("=")
        name = value if eq else item
        if name not in DTYPES:
            raise UserError(
                f"--dtype {text!r}: {name!r} is not a dtype cfbench runs networks in; choose from "
                f"{', '.join(DTYPES)} (per component as ROLE=DTYPE, e.g. diffae=bfloat16)."
            )
        if eq:
            per_role[role] = name
        else:
            default = name
    return default, per_role


def check(dtype: str, per_role: dict[str, str], backend: str | None, device: torch.device):
    if backend is not None and backend not in BACKENDS:
        raise UserError(
            f"--compile {backend!r} is not a torch.compile backend cfbench offers; choose from "
            f"{', '.join(BACKENDS)}."
        )
    if device.type == "cpu" and "float16" in {dtype, *per_role.values()}:
        raise UserError(
            "--dtype float16 on the CPU: its matrix kernels are emulated there and slower than "
            "float32; use bfloat16 (which the CPU computes natively where it has AVX-512 BF16 or "
            "AMX) or float32."
        )


@dataclass
class Numerics:
    """One component's setting: its dtype and compile backend."""

    dtype: str = "float32"
    backend: str | None = None
    compile_seconds: float = 0.0
    fallback: str | None = None
    _compiled: dict = field(default_factory=dict, repr=False)

    def precision(self, device: torch.device):
        """The context a generative network runs in (autocast below float32)."""
        if self.dtype == "float32":
            return contextlib.nullcontext()
        return torch.autocast(device_type=device.type, dtype=DTYPES[self.dtype])

    def network(self, module: torch.nn.Module):
        """``module`` compiled with the backend (once), or itself."""
        if self.backend is None or self.fallback is not None:
            return module
        if id(module) not in self._compiled:
            cache = Path(os.environ.get("CFBENCH_CACHE", Path.home() / ".cache" / "cfbench"))
            os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(cache / "inductor"))
            self._compiled[id(module)] = _Compiled(self, module)
        return self._compiled[id(module)]

    def describe(self) -> dict:
        found = {"dtype": self.dtype, "compile": self.backend}
        if self.backend is not None:
            found["compile_seconds"] = round(self.compile_seconds, 2)
            if self.fallback:
                found["compile_fallback"] = self.fallback
        return found


class _Compiled:
    """A compiled module that times its first call per input shape (compilation) and falls back
    to the eager module, saying so once, if compiling or running the compiled graph fails."""

    def __init__(self, numerics: Numerics, module: torch.nn.Module):
        self.numerics, self.module = numerics, module
        self.compiled = torch.compile(module, backend=numerics.backend, dynamic=False)
        self.shapes: set = set()

    def __getattr__(self, name):
        return getattr(self.module, name)

    def __call__(self, *args, **kwargs):
        if self.numerics.fallback is not None:
            return self.module(*args, **kwargs)
        shape = tuple(tuple(a.shape) for a in args if isinstance(a, torch.Tensor))
        t0 = time.perf_counter()
        try:
            out = self.compiled(*args, **kwargs)
        except Exception as err:  # any backend failure: the run goes on, eager
            self.numerics.fallback = f"{type(err).__name__}: {str(err).splitlines()[0][:200]}"
            print(
                f"Warning: torch.compile ({self.numerics.backend}) failed, running eager: "
                f"{self.numerics.fallback}",
                file=sys.stderr,
            )
            return self.module(*args, **kwargs)
        if shape not in self.shapes:
            self.shapes.add(shape)
            self.numerics.compile_seconds += time.perf_counter() - t0
        return out
