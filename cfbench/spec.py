"""What a ``cfbench run`` was asked to do (``RunSpec``), checked before any work, and how a
recorded run.json gives it back (``--config``)."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cfbench.errors import UserError

MAX_SAMPLES = 1_000_000  # a run's sample list is held in memory
MAX_SEED = 2**32 - 1  # seeds are combined with sample ids and classes into 64-bit generator seeds


@dataclass
class RunSpec:
    task: str
    methods: list[str]
    n: int | None = 32
    batch_size: int = 16
    seed: int = 0
    device: str = "auto"
    out: Path | None = None
    metrics: str = "all"
    overrides: list[str] = field(default_factory=list)  # --set METHOD.PARAM=VALUE
    regions: Path | None = None  # user region masks for region-constrained methods (--regions)
    # typed values, e.g. from a run.json
    hparams: dict[str, dict[str, Any]] = field(default_factory=dict)
    wait: bool = False  # queue behind another writer of the same --out instead of exit 2
    batch_sizes: dict[str, int] = field(default_factory=dict)  # per-method --batch-size METHOD=N
    protocol: str = "cfbench"  # metric protocol (PROTOCOLS in cfbench/catalog.py)
    dtype: str = "float32"  # the generative networks' (--dtype; cfbench/numerics.py)
    compile: str | None = None  # torch.compile backend (--compile)
    shard: tuple[int, int] | None = (
        None  # (rank, world) of an independent shard (Slurm); else from torchrun
    )

    def check_values(self) -> None:
        """Refuse numbers no run can use (before the names are looked up)."""
        if self.n is not None and not 1 <= self.n <= MAX_SAMPLES:
            raise UserError(
                f"--n must be a number of samples from 1 to {MAX_SAMPLES:,} (got {self.n})."
            )
        if not 0 <= self.seed <= MAX_SEED:
            raise UserError(f"--seed must lie in 0..{MAX_SEED} (got {self.seed}).")
        if self.batch_size < 1 or any(b < 1 for b in self.batch_sizes.values()):
            raise UserError(
                f"--batch-size must be at least 1 (got {self.batch_size}, {self.batch_sizes})."
            )

    def check_methods(self) -> None:
        """Refuse a method list that names one twice or per-method sizes for others."""
        if len(set(self.methods)) != len(self.methods):
            raise UserError(f"--methods lists a method twice: {','.join(self.methods)}.")
        if unknown := sorted(set(self.batch_sizes) - set(self.methods)):
            raise UserError(
                f"--batch-size names {', '.join(unknown)}, which is not in --methods "
                f"({', '.join(self.methods)})."
            )

    def batch_size_of(self, method: str) -> int:
        return self.batch_sizes.get(method, self.batch_size)

    @classmethod
    def from_run_json(cls, path: Path, **changes) -> RunSpec:
        """The spec that repeats a recorded run (task, methods with their resolved hyperparameters,
        n, seed, batch size, metrics); ``changes`` (e.g. ``out``, ``device``) override it."""
        try:
            info = json.loads(Path(path).read_text())
            config = info["config"]
            spec = cls(
                task=config["task"],
                methods=list(config["methods"]),
                n=config["n"],
                seed=config["seed"],
                protocol=config.get("protocol", "cfbench"),
                metrics=",".join(config["metrics"]),
                batch_size=info.get("batch_size", 16),
                batch_sizes=info.get("batch_sizes", {}),
                hparams=config["methods"],
                dtype=config.get("numerics", {}).get("dtype", "float32"),
                compile=config.get("numerics", {}).get("compile"),
            )
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise UserError(
                f"--config {path}: not a readable cfbench run.json ({type(err).__name__}: {err})."
            ) from None
        return dataclasses.replace(spec, **changes)


def parse_overrides(items: list[str], methods: list[str]) -> dict[str, dict[str, str]]:
    """``METHOD.PARAM=VALUE`` strings -> {method: {param: value}}."""
    parsed: dict[str, dict[str, str]] = {m: {} for m in methods}
    for item in items:
        key, eq, value = item.partition("=")
        method, dot, param = key.partition(".")
        if not eq or not dot or not method or not param or value == "":
            raise UserError(
                f"Malformed --set '{item}': write METHOD.PARAM=VALUE, e.g. --set slcf.lr=0.02."
            )
        if method not in parsed:
            raise UserError(
                f"--set '{item}' names method '{method}', which is not in --methods "
                f"({', '.join(methods)})."
            )
        parsed[method][param] = value
    return parsed
