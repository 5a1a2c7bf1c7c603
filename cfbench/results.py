"""Reading and writing a run directory (the results contract of DESIGN.md).

Every file is written to a temporary name and renamed into place, so a run killed at any point
leaves either the old file or the new one, never a torn one. Per-batch ``parts/`` files are the
commit record of finished samples: images are written first, the part last, and a resumed run
trusts only samples that have a part.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pandas as pd
import torch
from PIL import Image

from cfbench.errors import UserError

MAX_STEM_BYTES = 200   # file systems allow 255 bytes per name; room for a suffix and temp prefix


def file_stem(sample_id: str) -> str:
    """The file name (without suffix) that stands for a sample id in a run directory.

    Sample ids come from datasets ('n02130308/ILSVRC2012_val_00000001', 'Herring Gull 03', ids
    with unicode, dots or a leading dash), so every writer and reader of per-sample files goes
    through this one encoding: characters outside [A-Za-z0-9_.-] are percent-encoded (UTF-8), as
    are a leading '.' or '-' (hidden files, command-line options). It is the identity on ids like
    '00042' and injective; names too long for a file system keep a prefix plus a hash (after a
    '~', which the encoding never produces). The original id stays in samples.parquet.
    """
    if not sample_id:
        raise ValueError("a sample id must not be empty")
    stem = quote(sample_id, safe="").replace("~", "%7E")
    if stem[0] in ".-":
        stem = f"%{ord(stem[0]):02X}{stem[1:]}"
    if len(stem) > MAX_STEM_BYTES:
        stem = f"{stem[:MAX_STEM_BYTES - 17]}~{hashlib.sha256(sample_id.encode()).hexdigest()[:16]}"
    return stem


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
        path = png_path(folder, sid)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{path.stem}.", suffix=".png")
        os.close(fd)
        img.save(tmp, format="PNG")
        os.replace(tmp, path)


def png_path(folder: Path, sample_id: str) -> Path:
    return folder / f"{file_stem(sample_id)}.png"


def read_png(path: Path) -> torch.Tensor:
    """One PNG as (C,H,W) in [0, 1] (C is 1 for grey masks)."""
    arr = np.array(Image.open(path))
    return torch.from_numpy(arr[..., None] if arr.ndim == 2 else arr).permute(2, 0, 1).float() / 255


def load_pngs(folder: Path, sample_ids: list[str]) -> torch.Tensor:
    return torch.stack([read_png(png_path(folder, sid)) for sid in sample_ids])


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
        """One batch's rows, named by a digest of its sample ids (so a rewrite replaces, never duplicates)."""
        digest = hashlib.sha256("\0".join(sorted(rows["sample_id"])).encode()).hexdigest()[:20]
        write_frame(self.parts(method) / f"{digest}.parquet", rows)

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
