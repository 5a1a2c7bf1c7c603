"""Reading and writing a run directory (the results contract of DESIGN.md).

Every file is written to a temporary name and renamed into place, so a run killed at any point
leaves either the old file or the new one, never a torn one. Per-batch ``parts/`` files are the
commit record of finished samples: images are written first, the part last, and a resumed run
trusts only samples that have a part.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image

from cfbench.errors import UserError

METRIC_COLUMNS = ["FR", "COUT", "S3", "FID", "sFID", "LPIPS", "PF", "GT_IN", "GT_SPUR", "nfe", "sec_per_cf"]


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, obj) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, default=str) + "\n").encode())


def write_frame(path: Path, df: pd.DataFrame) -> None:
    """Parquet or CSV by suffix, atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        if path.suffix == ".parquet":
            df.to_parquet(tmp, index=False)
        else:
            df.to_csv(tmp, index=False)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def quantize(images: torch.Tensor) -> torch.Tensor:
    """Round to the 8-bit grid: every metric is computed on exactly what the PNG holds."""
    return torch.round(images.clamp(0, 1) * 255) / 255


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(B,C,H,W) in [0,1] -> (B,H,W,C) uint8 (C is 3, or 1 for masks)."""
    return torch.round(images.detach().clamp(0, 1) * 255).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def save_pngs(folder: Path, sample_ids: list[str], images: torch.Tensor) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for sid, arr in zip(sample_ids, to_uint8(images)):
        img = Image.fromarray(arr[..., 0] if arr.shape[-1] == 1 else arr)
        path = folder / f"{sid}.png"
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{sid}.", suffix=".png")
        os.close(fd)
        img.save(tmp, format="PNG")
        os.replace(tmp, path)


def load_pngs(folder: Path, sample_ids: list[str]) -> torch.Tensor:
    arrays = []
    for sid in sample_ids:
        arr = np.asarray(Image.open(folder / f"{sid}.png"))
        arrays.append(arr[..., None] if arr.ndim == 2 else arr)
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float() / 255


class RunDir:
    """Paths and readers of one run directory."""

    def __init__(self, root: Path):
        self.root = Path(root)

    run_json = property(lambda self: self.root / "run.json")
    samples = property(lambda self: self.root / "samples.parquet")
    metrics = property(lambda self: self.root / "metrics.csv")
    figures = property(lambda self: self.root / "figures")

    def images(self, method: str | None = None) -> Path:
        return self.root / "images" / (method or "original")

    def masks(self, method: str) -> Path:
        return self.root / "masks" / method

    def parts(self, method: str) -> Path:
        return self.root / "parts" / method

    def finished_rows(self, method: str) -> pd.DataFrame | None:
        files = sorted(self.parts(method).glob("*.parquet"))
        return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True) if files else None

    def write_part(self, method: str, rows: pd.DataFrame) -> None:
        first, last = rows["sample_id"].iloc[0], rows["sample_id"].iloc[-1]
        write_frame(self.parts(method) / f"{first}--{last}.parquet", rows)

    @classmethod
    def existing(cls, path: str | Path) -> "RunDir":
        run = cls(Path(path))
        if not run.run_json.exists():
            raise UserError(f"'{path}' is not a cfbench run directory (it has no run.json). "
                            "Pass the directory that `cfbench run` wrote, e.g. results/runs/<task>-<time>.")
        return run

    def read_run_json(self) -> dict:
        return json.loads(self.run_json.read_text())

    def read_metrics(self) -> pd.DataFrame:
        if not self.metrics.exists():
            raise UserError(f"Run '{self.root}' has no metrics.csv: it did not finish. "
                            "Start the same `cfbench run` command again to resume and finish it.")
        return pd.read_csv(self.metrics)
