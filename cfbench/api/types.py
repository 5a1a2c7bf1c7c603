"""The data that flows between tasks, methods, the runner and metrics."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class Batch:
    """Images (B,3,H,W in [0,1]) to explain, with source/target class ids and stable sample ids."""

    images: torch.Tensor
    source: torch.Tensor
    target: torch.Tensor
    sample_ids: list[str]
    regions: torch.Tensor | None = None  # (B,1,H,W) in {0,1}: user-given constraint
    generators: list[torch.Generator] | None = None  # one per sample, seeded by the runner

    def __len__(self) -> int:
        return len(self.sample_ids)


@dataclass
class Counterfactuals:
    """A method's output; ``info`` holds per-sample tensors, at least ``steps`` and ``nfe``."""

    images: torch.Tensor
    masks: torch.Tensor | None = None
    info: dict[str, torch.Tensor] = field(default_factory=dict)
