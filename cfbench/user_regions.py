"""Region masks a user gives with ``cfbench run --regions DIR``: one PNG per sample id (white =
the region that may change), checked before any work and read per batch into ``Batch.regions``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from PIL import Image, UnidentifiedImageError
from torch.nn import functional as F

from cfbench.errors import UserError
from cfbench.results import png_path, read_png


def region_file(folder: Path, sample_id: str) -> Path | None:
    """A sample's ``--regions`` PNG: named like the run's own files (``results.file_stem``), or, for
    ids with a slash, at the id's own relative path (``n02130308/ILSVRC2012_val_00000001.png``)."""
    candidates = [png_path(folder, sample_id)]
    if ".." not in Path(sample_id).parts and not Path(sample_id).is_absolute():
        candidates.append(folder / f"{sample_id}.png")
    return next((c for c in candidates if c.is_file()), None)


def region_files(folder: Path, sample_ids: list[str]) -> dict[str, Path]:
    """Every sample's ``--regions`` PNG; a UserError names the samples that have none."""
    files = {s: region_file(folder, s) for s in sample_ids}
    missing = [s for s, f in files.items() if f is None]
    if missing:
        raise UserError(
            f"--regions {folder}: no region mask for sample(s) {', '.join(missing[:5])}; the "
            "folder "
            "needs one PNG per sample id (e.g. 00000.png, white = the region that may change)."
        )
    return files


def check_user_regions(folder: Path, sample_ids: list[str], size: int) -> None:
    """Before any work: ``--regions`` is a folder with a readable PNG for every sample (a mask of
    another size is resized with nearest neighbours, which is said once)."""
    if not folder.is_dir():
        raise UserError(
            f"--regions '{folder}' is not a directory: pass a folder with one PNG region mask per "
            "sample id (white = the region that may change)."
        )
    files = region_files(folder, sample_ids)
    resized = []
    for sid, f in files.items():
        try:
            with Image.open(f) as img:
                img.load()
                if img.size != (size, size):
                    resized.append(f"{f.name} ({img.size[0]}x{img.size[1]})")
        except (OSError, UnidentifiedImageError) as err:
            raise UserError(
                f"--regions: the mask {f} for sample {sid} is not a readable image ({err})."
            ) from None
    if resized:
        print(
            f"Note: {len(resized)} region mask(s) are not {size}x{size} and are resized with "
            "nearest neighbours, "
            f"e.g. {resized[0]}.",
            file=sys.stderr,
        )


def load_user_regions(folder: Path, sample_ids: list[str], size: tuple[int, int]) -> torch.Tensor:
    """``--regions DIR`` masks (grey or colour; white = editable; see ``region_file``), resized to
    ``size`` with nearest neighbours and binarised at 0.5, as (B,1,H,W) in {0,1}."""
    files = region_files(folder, sample_ids)
    masks = []
    for sid in sample_ids:
        m = read_png(files[sid])[None, :3].mean(1, keepdim=True)
        masks.append(
            F.interpolate(m, size=size, mode="nearest") if tuple(m.shape[-2:]) != tuple(size) else m
        )
    return (torch.cat(masks) > 0.5).float()
