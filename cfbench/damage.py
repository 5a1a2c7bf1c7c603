"""What a damaged run directory is, in one place, and how a resumed run repairs it.

A run commits each batch as its PNGs, then its ``parts/<method>/`` file; ``samples.parquet`` and
``metrics.csv`` are summaries written from those. A file is damaged when it cannot be read back: a
part file pyarrow cannot open, a committed sample's PNG that is missing or does not decode, a
summary that is unreadable or lacks a method's row. ``cfbench run`` (resume) moves damaged files
aside into ``damaged/`` with the part files of the samples they belong to, so exactly those batches
are computed again and the summaries rewritten; ``finalize``, ``rescore``, ``table`` and
``regress`` refuse a damaged directory and say what to run.
"""

from __future__ import annotations

import datetime as dt
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from cfbench.errors import UserError
from cfbench.results import RunDir, png_path

HOW_TO_REPAIR = (
    "Start the same `cfbench run` command again: it moves the damaged files aside into "
    "{root}/damaged/ and recomputes the samples they hold."
)


@dataclass
class Damage:
    reasons: dict[Path, str] = field(default_factory=dict)  # damaged file -> what is wrong
    parts: set[Path] = field(default_factory=set)  # part files whose samples must be recomputed

    def __bool__(self) -> bool:
        return bool(self.reasons)

    def describe(self, root: Path) -> str:
        listed = [f"{p.relative_to(root)} ({why})" for p, why in list(self.reasons.items())[:5]]
        more = len(self.reasons) - len(listed)
        return (
            f"Run directory '{root}' is damaged: {'; '.join(listed)}"
            + (f"; and {more} more" if more > 0 else "")
            + "."
        )


def _parquet_ok(path: Path) -> bool:
    import pyarrow
    import pyarrow.parquet as pq

    try:
        pq.read_metadata(path)
    except (OSError, ValueError, pyarrow.ArrowException):
        return False
    return True


def _png_ok(path: Path) -> str | None:
    """None when ``path`` is a PNG that decodes, else what is wrong with it."""
    from PIL import Image

    if not path.exists():
        return "missing"
    try:
        with Image.open(path) as image:
            image.load()
    except (OSError, SyntaxError, ValueError):
        return "does not decode"
    return None


def _summary_problem(run: RunDir, path: Path, methods: list[str]) -> str | None:
    try:
        if path.suffix == ".csv":
            frame = pd.read_csv(path)
        else:
            frame = pd.read_parquet(path)
    except (OSError, ValueError, ImportError) as err:  # pyarrow's ArrowInvalid is a ValueError
        return f"unreadable: {type(err).__name__}"
    if "method" not in frame.columns:
        return "no method column"
    missing = [m for m in methods if m not in set(frame["method"])]
    return f"no rows of {', '.join(missing)}" if missing else None


def find(run: RunDir, methods: list[str], images: bool = True) -> Damage:
    """Every damaged file of ``run`` for ``methods`` (PNGs only when ``images``)."""
    damage = Damage()
    for name in methods:
        for part in sorted(run.parts(name).glob("*.parquet")):
            if not _parquet_ok(part):
                damage.reasons[part] = "unreadable part file"
                damage.parts.add(part)
                continue
            if not images:
                continue
            ids = pd.read_parquet(part, columns=["sample_id"])["sample_id"]
            folders = [run.images(), run.images(name)]
            folders += [run.masks(name)] if run.masks(name).is_dir() else []
            for folder in folders:
                for sid in ids:
                    png = png_path(folder, sid)
                    why = _png_ok(png)
                    if why:
                        damage.reasons[png] = why
                        damage.parts.add(part)
    for summary in (run.samples, run.metrics):
        if summary.exists():
            why = _summary_problem(run, summary, methods)
            if why:
                damage.reasons[summary] = why
    return damage


def refuse_if_damaged(run: RunDir, methods: list[str], images: bool = True) -> None:
    """For commands that read a finished run: a damaged one is a UserError saying what to run."""
    damage = find(run, methods, images)
    if damage:
        raise UserError(damage.describe(run.root) + " " + HOW_TO_REPAIR.format(root=run.root))


def repair(run: RunDir, methods: list[str]) -> bool:
    """Move damaged files, the part files of their samples and the summaries into
    ``damaged/<time>/``; returns whether anything was moved (the run must then resume)."""
    damage = find(run, methods)
    if not damage:
        return False
    aside = run.root / "damaged" / dt.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    moving = set(damage.reasons) | damage.parts | {p for p in (run.samples, run.metrics)}
    for path in sorted(p for p in moving if p.exists()):
        target = aside / path.relative_to(run.root)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(path), str(target))
    print(
        damage.describe(run.root)
        + f" Moved aside into {aside}; the samples they hold are computed again.",
        file=sys.stderr,
    )
    return True
