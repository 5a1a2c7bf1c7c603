"""Reading and writing a run directory (the results contract of docs/design.md).

Every file is written to a temporary name and renamed into place, so a run killed at any point
leaves either the old file or the new one, never a torn one. Per-batch ``parts/`` files are the
commit record of finished samples: images are written first, the part last, and a resumed run trusts
only samples that have a part."""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import os
import sys
import tempfile
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pandas as pd
import torch
from PIL import Image

from cfbench.errors import UserError

MAX_STEM_BYTES = 200  # file systems allow 255 bytes per name; room for a suffix and temp prefix


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
        stem = (
            f"{stem[: MAX_STEM_BYTES - 17]}~{hashlib.sha256(sample_id.encode()).hexdigest()[:16]}"
        )
    return stem


TEMP_SUFFIX = ".tmp"


def file_mode() -> int:
    """What open() would give a new file under the current umask (mkstemp's temporaries are
    0600)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


@contextlib.contextmanager
def atomic_path(path: Path):
    """A temporary path beside ``path`` to write to; renamed onto ``path`` (with the user's umask)
    when the block ends, removed if it fails or is interrupted, so ``path`` is never torn and no
    temporary outlives its writer (``sweep_temporaries`` removes those of a killed one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMP_SUFFIX)
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, file_mode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def sweep_temporaries(root: Path) -> int:
    """Remove the temporaries a killed writer left under ``root``; returns how many."""
    found = [p for p in root.rglob(f".*{TEMP_SUFFIX}") if p.is_file()]
    for p in found:
        p.unlink(missing_ok=True)
    return len(found)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        Path(tmp).write_bytes(data)


def write_json(path: Path, obj) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, default=str) + "\n").encode())


def write_frame(path: Path, df: pd.DataFrame) -> None:
    """Parquet or CSV by suffix, atomically."""
    with atomic_path(path) as tmp:
        if path.suffix == ".parquet":
            df.to_parquet(tmp, index=False)
        else:
            df.to_csv(tmp, index=False)


def quantize(images: torch.Tensor) -> torch.Tensor:
    """Round to the 8-bit grid: every metric is computed on exactly what the PNG holds."""
    return torch.round(images.clamp(0, 1) * 255) / 255


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(B,C,H,W) in [0,1] -> (B,H,W,C) uint8 (C is 3, or 1 for masks)."""
    return (
        torch.round(images.detach().clamp(0, 1) * 255)
        .to(torch.uint8)
        .permute(0, 2, 3, 1)
        .cpu()
        .numpy()
    )


def save_pngs(folder: Path, sample_ids: list[str], images: torch.Tensor) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for sid, arr in zip(sample_ids, to_uint8(images)):
        img = Image.fromarray(arr[..., 0] if arr.shape[-1] == 1 else arr)
        with atomic_path(png_path(folder, sid)) as tmp:
            img.save(tmp, format="PNG")


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
        """Every committed row of ``method``, each sample once (parts written with different batch
        sizes may overlap; a sample's row does not depend on its batch, the first is kept)."""
        files = sorted(self.parts(method).glob("*.parquet"))
        if not files:
            return None
        rows = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
        return rows.drop_duplicates("sample_id", keep="first").reset_index(drop=True)

    @contextlib.contextmanager
    def lock(self, wait: bool = False, name: str = "run"):
        """One writer at a time: an advisory lock (``fcntl.flock`` on ``<name>.lock``, released by
        the OS when its holder dies, so a killed run never leaves a stale lock) naming its holder.
        Shards of one run lock their own share (``name``)."""
        import fcntl
        import socket

        path = self.root / f"{name}.lock"
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, file_mode())
        except OSError as err:
            raise UserError(
                f"Cannot write to the output directory '{self.root}': {err.strerror}. "
                "Pass a writable directory with --out."
            ) from None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = path.read_text().strip() or "another process"
                if not wait:
                    raise UserError(
                        f"Run directory '{self.root}' is being written by {holder}. Wait for it to "
                        "finish (or pass --wait to queue behind it), or use another --out."
                    ) from None
                print(
                    f"Waiting for {holder} to finish writing {self.root} ...",
                    file=sys.stderr,
                    flush=True,
                )
                fcntl.flock(fd, fcntl.LOCK_EX)
            os.ftruncate(fd, 0)
            os.write(
                fd,
                f"{socket.gethostname()} pid {os.getpid()} since "
                f"{datetime.datetime.now():%Y-%m-%d %H:%M:%S}\n".encode(),
            )
            yield
        finally:
            os.close(fd)  # releases the lock

    def write_part(self, method: str, rows: pd.DataFrame) -> None:
        """One batch's rows, named by a digest of its sample ids (so a rewrite replaces, never
        duplicates)."""
        digest = hashlib.sha256("\0".join(sorted(rows["sample_id"])).encode()).hexdigest()[:20]
        write_frame(self.parts(method) / f"{digest}.parquet", rows)

    @classmethod
    def existing(cls, path: str | Path) -> RunDir:
        run = cls(Path(path))
        if not run.run_json.exists():
            raise UserError(
                f"'{path}' is not a cfbench run directory (it has no run.json). "
                "Pass the directory that `cfbench run` wrote, e.g. results/runs/<task>-<time>."
            )
        return run

    def read_run_json(self) -> dict:
        try:
            info = json.loads(self.run_json.read_text())
        except (OSError, ValueError) as err:
            raise UserError(
                f"'{self.run_json}' is unreadable or not JSON ({err}); the run directory is "
                "damaged: rerun into another --out."
            ) from None
        if not isinstance(info, dict):
            raise UserError(f"'{self.run_json}' does not hold a cfbench run record.")
        return info

    def read_run_record(self) -> dict:
        """run.json with the settings a rerun or rescore needs (its ``config`` and ``metrics``)."""
        info = self.read_run_json()
        if not isinstance(info.get("config"), dict) or not isinstance(info.get("metrics"), list):
            raise UserError(
                f"'{self.run_json}' does not hold a cfbench run record (no 'config' or "
                "'metrics'); the run directory is damaged: rerun into another --out."
            )
        return info

    def read_metrics(self) -> pd.DataFrame:
        if not self.metrics.exists():
            raise UserError(
                f"Run '{self.root}' has no metrics.csv: it did not finish. "
                "Start the same `cfbench run` command again to resume and finish it."
            )
        try:
            frame = pd.read_csv(self.metrics)
        # pandas' EmptyDataError and ParserError are ValueErrors
        except (
            OSError,
            ValueError,
        ) as err:
            raise UserError(
                f"'{self.metrics}' is unreadable ({type(err).__name__}); rerun the same `cfbench "
                "run` command to rewrite it from the run's parts."
            ) from None
        if not {"task", "method"} <= set(frame.columns):
            raise UserError(
                f"'{self.metrics}' is not a cfbench metrics table (no task/method columns)."
            )
        methods = self.read_run_json().get("config", {}).get("methods", {})
        missing = [m for m in methods if m not in set(frame["method"])]
        if missing:
            raise UserError(
                f"'{self.metrics}' has no row for {', '.join(missing)}: it is truncated. Start "
                "the same `cfbench run` command again to rewrite it from the run's parts."
            )
        return frame
