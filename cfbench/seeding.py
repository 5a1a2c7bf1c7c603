"""Per-sample randomness, so a sample's result does not depend on its batch.

Each sample gets its own ``torch.Generator`` seeded from (run seed, sample id) with a stable hash;
noise is drawn on the CPU per sample and then moved, so it is also the same on every device.
"""

from __future__ import annotations

import hashlib

import torch


def sample_seed(run_seed: int, sample_id: str) -> int:
    digest = hashlib.sha256(f"{run_seed}:{sample_id}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def generators_for(run_seed: int, sample_ids: list[str]) -> list[torch.Generator]:
    return [torch.Generator().manual_seed(sample_seed(run_seed, s)) for s in sample_ids]


def randn(
    generators: list[torch.Generator], shape: tuple[int, ...], device: torch.device
) -> torch.Tensor:
    """One standard-normal tensor of ``shape`` per sample, stacked: (B, *shape)."""
    return torch.stack([torch.randn(shape, generator=g) for g in generators]).to(device)


def rand(
    generators: list[torch.Generator], shape: tuple[int, ...], device: torch.device
) -> torch.Tensor:
    """Uniform [0, 1) counterpart of ``randn``."""
    return torch.stack([torch.rand(shape, generator=g) for g in generators]).to(device)
