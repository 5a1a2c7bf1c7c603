"""Guarding a run directory: which directory a run writes to, that it holds this run and no
other, that it is writable, that one writer at a time holds it, and what a full disk means.

Damaged files are found and moved aside by ``cfbench/damage.py``; the files themselves are
written atomically by ``cfbench/results.py``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import glob
import itertools
import json
import sys
from pathlib import Path

from cfbench import damage
from cfbench.errors import UserError
from cfbench.results import RunDir, file_stem, sweep_temporaries

DEFAULT_ROOT = Path("results/runs")


def choose_out(out: Path | None, task_name: str, config: dict) -> Path:
    """``--out`` when given (refused if it holds another run); else the newest unfinished run of
    the same configuration under ``results/runs/``, or a new directory there."""
    if out is not None:
        out = Path(out)
        if (out / "run.json").exists():
            check_same_config(out, config)
        elif (out / "parts").exists():
            raise UserError(
                f"'{out}' holds results but no run.json, so nothing says which settings made "
                "them: refusing to add to it. Use another --out (or delete the directory)."
            )
        return out
    stem = file_stem(task_name)  # a task file's name may hold '/' or '..'
    for previous in sorted(DEFAULT_ROOT.glob(f"{glob.escape(stem)}-*"), reverse=True):
        try:
            info = json.loads((previous / "run.json").read_text())
        except (OSError, ValueError):
            continue
        if not info.get("finished") and info.get("config") == config:
            print(f"Resuming the unfinished run in {previous}")
            return previous
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    DEFAULT_ROOT.mkdir(parents=True, exist_ok=True)
    for suffix in itertools.count():  # created exclusively: two runs started together get two
        candidate = DEFAULT_ROOT / (f"{stem}-{stamp}" + (f"-{suffix}" if suffix else ""))
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            continue


def check_same_config(out: Path, config: dict) -> None:
    try:
        previous = json.loads((out / "run.json").read_text()).get("config")
    except (OSError, ValueError, AttributeError):
        raise UserError(
            f"'{out / 'run.json'}' is damaged (not a readable cfbench run record), so this run "
            "cannot be resumed there: use another --out."
        ) from None
    if previous != config:
        raise UserError(
            f"'{out}' already holds a run with different settings (task, methods, "
            "hyperparameters, n, seed, metrics or model weights). Use another --out, or repeat "
            "that run's exact arguments to resume it."
        )


def open_for_writing(root: Path) -> None:
    """Create ``root`` if needed, prove it writable, and remove a killed writer's temporaries."""
    try:
        root.mkdir(parents=True, exist_ok=True)
        probe = root / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as err:
        raise UserError(
            f"Cannot write to the output directory '{root}': {err.strerror}. "
            "Pass a writable directory with --out."
        ) from err
    swept = sweep_temporaries(root)
    if swept:
        print(
            f"Removed {swept} temporary file(s) an interrupted writer left in {root}.",
            file=sys.stderr,
        )


def finished_here(run: RunDir, config: dict, methods: list[str]) -> bool:
    """A finished run with these settings is left as it is: its record stays the one that made
    it, and results kept without their PNGs (as in results/paper/) stay valid. Deleting its
    metrics.csv or samples.parquet asks for the summary again."""
    if not all(p.exists() for p in (run.run_json, run.metrics, run.samples)):
        return False
    try:
        info = run.read_run_json()
    except UserError:  # damaged: the usual path says so
        return False
    if not (info.get("finished") and info.get("config") == config):
        return False
    # a damaged one is repaired and resumed; one kept without its PNGs stays as it is
    return not damage.find(run, methods, images=run.images().is_dir())


def taken_meanwhile(run: RunDir, config: dict, methods: list[str]) -> bool:
    """Under the lock, look again: a writer this process queued behind may have started this
    directory with other settings (refused) or finished this very run (nothing to do)."""
    if not run.run_json.exists():
        return False
    check_same_config(run.root, config)
    if finished_here(run, config, methods):
        print(
            f"{run.root} was finished meanwhile by another process: nothing to do.", file=sys.stderr
        )
        return True
    return False


def writer_lock(run: RunDir, shard, group, wait: bool, independent: bool):
    """The run's lock for a single process or rank 0 of a torchrun job (every rank learns whether
    it was granted); an independent (Slurm) shard locks only its own share."""
    if shard.grouped:
        return _group_lock(run, shard, group, wait)
    if independent:
        return run.lock(wait=wait, name=f"shard-{shard.rank}-of-{shard.world}")
    return run.lock(wait=wait)


@contextlib.contextmanager
def _group_lock(run: RunDir, shard, group, wait: bool):
    """Rank 0 takes the run's lock and tells every rank whether it got it, so a job refused a
    busy directory ends on every rank with the same message (not in a collective)."""
    held = contextlib.ExitStack()
    refused = None
    if shard.leader:
        refused = attempt(lambda: held.enter_context(run.lock(wait=wait)))
        refused = refused if isinstance(refused, UserError) else None
    refused = group.broadcast(refused)
    if refused is not None:
        raise refused
    with held:
        yield


@contextlib.contextmanager
def disk_full(root: Path):
    """A full disk ends the run with a message that says committed work is kept."""
    try:
        yield
    except OSError as err:
        if err.errno in (errno.ENOSPC, errno.EDQUOT):
            raise UserError(
                f"The disk holding '{root}' is full ({err.strerror}). Everything committed so far "
                "is kept: free some space and start the same command again to resume."
            ) from None
        raise


def attempt(choose):
    """``choose()``, or the UserError it raised (to be announced to the other ranks)."""
    try:
        return choose()
    except UserError as err:
        return err
