"""Device choice: ``auto`` means CUDA when present, else CPU."""

from __future__ import annotations

import torch

from cfbench.errors import UserError


def resolve_device(name: str = "auto", local_rank: int = 0) -> torch.device:
    """``auto``: this process's GPU (``local_rank`` under torchrun) when CUDA is present, else
    CPU."""
    if name == "auto":
        return torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise UserError(f"Unknown device '{name}': use auto, cpu, cuda or cuda:N.") from err
    if device.type == "cpu" and device.index not in (None, 0):
        raise UserError(f"Device '{name}': the CPU takes no index; use --device cpu (or auto).")
    if device.type not in ("cpu", "cuda"):
        raise UserError(
            f"Device '{name}' is not supported: cfbench runs on cpu or cuda (use --device auto)."
        )
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(
            f"Device '{name}' was requested but CUDA is not available on this machine; "
            "use --device cpu or --device auto."
        )
    return device
