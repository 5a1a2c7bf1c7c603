"""``cfbench run``: generate counterfactuals batch by batch, score them, write the run directory.

Resume: samples are committed per batch (images first, then the batch's ``parts/`` file), so a
killed run started again with the same arguments skips every committed sample. Without ``--out``
the newest unfinished run of the same configuration under ``results/runs/`` is resumed.
``RunSpec.from_run_json`` repeats a finished run from its run.json.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import errno
import glob
import itertools
import json
import platform
import subprocess
import sys
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from cfbench import damage, distributed, seeding
from cfbench.api.metric import Metric
from cfbench.api.types import Batch
from cfbench.batches import BatchLoop, StatusLine
from cfbench.catalog import METHODS, METRICS, PROTOCOLS, TASKS
from cfbench.device import resolve_device
from cfbench.distributed import Group, Shard
from cfbench.errors import UserError
from cfbench.results import (
    RunDir,
    file_stem,
    quantize,
    save_pngs,
    sweep_temporaries,
    write_frame,
    write_json,
)
from cfbench.scoring import score_batch
from cfbench.user_regions import check_user_regions, load_user_regions

DEFAULT_ROOT = Path("results/runs")
MAX_SAMPLES = 1_000_000  # a run's sample list is held in memory
MAX_SEED = 2**32 - 1  # seeds are combined with sample ids and classes into 64-bit generator seeds
_PACKAGES = (
    "torch",
    "torchvision",
    "diffusers",
    "captum",
    "quantus",
    "torch-fidelity",
    "lpips",
    "pandas",
    "numpy",
)


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
    shard: tuple[int, int] | None = (
        None  # (rank, world) of an independent shard (Slurm); else from torchrun
    )

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


def metric_names(spec: str) -> list[str]:
    return METRICS.names() if spec.strip() == "all" else METRICS.parse_list(spec)


def git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).resolve().parent,
        )
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def package_versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for pkg in _PACKAGES:
        try:
            found[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return found


def supports(task, method_name: str) -> bool:
    """Whether ``task`` can provide every component method ``method_name`` needs there."""
    needed = METHODS.get(method_name).load().requires(METHODS.params(method_name, task))
    return all(task.has_component(r) for r in needed)


class Runner:
    def __init__(self, spec: RunSpec):
        self.spec = spec
        if spec.n is not None and not 1 <= spec.n <= MAX_SAMPLES:
            raise UserError(
                f"--n must be a number of samples from 1 to {MAX_SAMPLES:,} (got {spec.n})."
            )
        if not 0 <= spec.seed <= MAX_SEED:
            raise UserError(f"--seed must lie in 0..{MAX_SEED} (got {spec.seed}).")
        if spec.batch_size < 1 or any(b < 1 for b in spec.batch_sizes.values()):
            raise UserError(
                f"--batch-size must be at least 1 (got {spec.batch_size}, {spec.batch_sizes})."
            )
        TASKS.get(spec.task)
        self.methods = METHODS.parse_list(",".join(spec.methods))
        if len(set(self.methods)) != len(self.methods):
            raise UserError(f"--methods lists a method twice: {','.join(self.methods)}.")
        if unknown := sorted(set(spec.batch_sizes) - set(self.methods)):
            raise UserError(
                f"--batch-size names {', '.join(unknown)}, which is not in --methods "
                f"({', '.join(self.methods)})."
            )
        self.metric_names = metric_names(spec.metrics)
        self.protocol = PROTOCOLS.get(spec.protocol).load()
        overrides = parse_overrides(spec.overrides, self.methods)
        self.shard = Shard(*spec.shard) if spec.shard else distributed.from_environment()
        self.device = resolve_device(spec.device, self.shard.local_rank)
        self.group = Group(self.shard, self.device)
        self.task = TASKS.build(spec.task, device=self.device)
        # every method's hyperparameters, built once (see cfbench.api.method)
        self.params = {
            m: METHODS.params(m, self.task, {**spec.hparams.get(m, {}), **overrides[m]})
            for m in self.methods
        }
        self.hparams = {m: dataclasses.asdict(p) for m, p in self.params.items()}
        roles = sorted(
            {r for m in self.methods for r in METHODS.get(m).load().requires(self.params[m])}
        )
        for role in roles:  # load now: a missing or broken model stops the run before any work
            self.task.component(role)
        self.task.check()
        self.sample_ids = self.task.sample_ids(spec.n)
        if spec.n is not None and len(self.sample_ids) < spec.n:
            print(
                f"Note: task '{spec.task}' has {len(self.sample_ids)} samples, fewer than --n "
                f"{spec.n}; "
                f"running all {len(self.sample_ids)}.",
                file=sys.stderr,
            )
        if spec.regions is not None:
            check_user_regions(Path(spec.regions), self.sample_ids, self.task.image_size)
            ignoring = [m for m in self.methods if "region" not in self.hparams[m]]
            if ignoring:
                print(
                    f"Note: --regions constrains region-based methods only; {', '.join(ignoring)} "
                    "ignore it.",
                    file=sys.stderr,
                )
        self.components = self.task.provenance(roles)
        self.config = {
            "task": spec.task,
            "methods": self.hparams,
            "n": len(self.sample_ids),
            "n_requested": spec.n,
            "seed": spec.seed,
            "metrics": self.metric_names,
            "task_settings": self.task.settings(),
            "components": {r: p["sha256"] for r, p in self.components.items()},
            "protocol": self.protocol.name,
        }
        if spec.regions is not None:
            self.config["regions"] = str(Path(spec.regions).resolve())
        # rank 0 of a torchrun job chooses the directory and announces it (or the reason it cannot)
        chosen = self.group.broadcast(
            _attempt(self._choose_out) if self.shard.leader or not self.shard.grouped else None
        )
        if isinstance(chosen, UserError):
            raise chosen
        self.run = RunDir(chosen)
        self.built: dict[str, Any] = {}

    @property
    def coordinator(self) -> bool:
        """Prepares the directory and fits: a single process, or rank 0 of a torchrun job (the
        submitting process prepares for independent shards)."""
        return self.shard.leader and self.spec.shard is None

    # -- where to write -------------------------------------------------------------------------
    def _choose_out(self) -> Path:
        if self.spec.out is not None:
            out = Path(self.spec.out)
            if (out / "run.json").exists():
                self._check_same_config(out)
            elif (out / "parts").exists():
                raise UserError(
                    f"'{out}' holds results but no run.json, so nothing says which settings made "
                    "them: refusing to add to it. Use another --out (or delete the directory)."
                )
            return out
        stem = file_stem(self.task.name)  # a task file's name may hold '/' or '..'
        for previous in sorted(DEFAULT_ROOT.glob(f"{glob.escape(stem)}-*"), reverse=True):
            try:
                info = json.loads((previous / "run.json").read_text())
            except (OSError, ValueError):
                continue
            if not info.get("finished") and info.get("config") == self.config:
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

    def _check_same_config(self, out: Path) -> None:
        try:
            previous = json.loads((out / "run.json").read_text()).get("config")
        except (OSError, ValueError, AttributeError):
            raise UserError(
                f"'{out / 'run.json'}' is damaged (not a readable cfbench run record), so this run "
                "cannot be resumed there: use another --out."
            ) from None
        if previous != self.config:
            raise UserError(
                f"'{out}' already holds a run with different settings (task, methods, "
                "hyperparameters, n, seed, metrics or model weights). Use another --out, or repeat "
                "that run's exact arguments to resume it."
            )

    def _prepare_out(self) -> dict:
        root = self.run.root
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
        info = self.run.read_run_json() if self.run.run_json.exists() else {}
        info.update(
            {
                "config": self.config,
                "task": self.task.name,
                "methods": self.hparams,
                "n": len(self.sample_ids),
                "seed": self.spec.seed,
                "device": str(self.device),
                "metrics": self.metric_names,
                "versions": package_versions(),
                "git_commit": git_commit(),
                "finished": False,
                "task_provenance": self.components,
                "protocol": self.protocol.name,
                "protocol_rules": self.protocol.describe(),
            }
        )
        info.setdefault("started", dt.datetime.now().isoformat(timespec="seconds"))
        # the batch sizes the run was started with (a sample's result does not depend on them)
        info.setdefault("batch_size", self.spec.batch_size)
        info.setdefault("batch_sizes", {m: self.batch_size(m) for m in self.methods})
        write_json(self.run.run_json, info)
        return info

    # -- generation -----------------------------------------------------------------------------
    def execute(self) -> RunDir:
        """Generate this process's share of the run and, when it is the last, summarise it."""
        if self._finished_here():
            print(
                f"{self.run.root} already holds this run, finished: nothing to do "
                "(`cfbench rescore` recomputes its metrics).",
                file=sys.stderr,
            )
            return self.run
        try:
            with self._guard(), self._disk_full():
                if self._taken_meanwhile():
                    return self.run
                if self.coordinator and self.run.run_json.exists():
                    damage.repair(self.run, self.methods)
                metrics = self._metrics()
                if self.coordinator:
                    self.prepare(metrics)
                self.group.barrier()  # fits and run.json are ready
                for name in self.methods:
                    self._generate(name, metrics)
                self.group.barrier()  # every rank has committed its samples
                if self.shard.world == 1 or (self.shard.grouped and self.shard.leader):
                    self._finalize(metrics, self.run.read_run_json())
                elif not self.shard.grouped:
                    self._finish_shard(metrics)
        finally:
            self.group.close()
        return self.run

    def _taken_meanwhile(self) -> bool:
        """Under the lock, look again: a writer this process queued behind may have started this
        directory with other settings (refused) or finished this very run (nothing to do)."""
        if not self.coordinator or not self.run.run_json.exists():
            return False
        self._check_same_config(self.run.root)
        if self._finished_here():
            print(
                f"{self.run.root} was finished meanwhile by another process: nothing to do.",
                file=sys.stderr,
            )
            return True
        return False

    def _finished_here(self) -> bool:
        """A finished run with these settings is left as it is: its record stays the one that made
        it, and results kept without their PNGs (as in results/paper/) stay valid. Deleting its
        metrics.csv or samples.parquet asks for the summary again."""
        if not all(p.exists() for p in (self.run.run_json, self.run.metrics, self.run.samples)):
            return False
        try:
            info = self.run.read_run_json()
        except UserError:  # damaged: the usual path says so
            return False
        if not (info.get("finished") and info.get("config") == self.config):
            return False
        # a damaged one is repaired and resumed; one kept without its PNGs stays as it is
        return not damage.find(self.run, self.methods, images=self.run.images().is_dir())

    def _guard(self):
        """The run's lock for a single process or rank 0; an independent shard locks only its
        share."""
        if self.shard.grouped:
            return self._group_lock()
        if self.spec.shard is not None:
            return self.run.lock(
                wait=self.spec.wait, name=f"shard-{self.shard.rank}-of-{self.shard.world}"
            )
        return self.run.lock(wait=self.spec.wait)

    @contextlib.contextmanager
    def _group_lock(self):
        """Rank 0 takes the run's lock and tells every rank whether it got it, so a job refused a
        busy directory ends on every rank with the same message (not in a collective)."""
        held = contextlib.ExitStack()
        refused = None
        if self.shard.leader:
            refused = _attempt(lambda: held.enter_context(self.run.lock(wait=self.spec.wait)))
            refused = refused if isinstance(refused, UserError) else None
        refused = self.group.broadcast(refused)
        if refused is not None:
            raise refused
        with held:
            yield

    @contextlib.contextmanager
    def _disk_full(self):
        try:
            yield
        except OSError as err:
            if err.errno in (errno.ENOSPC, errno.EDQUOT):
                raise UserError(
                    f"The disk holding '{self.run.root}' is full ({err.strerror}). Everything "
                    "committed so far is kept: free some space and start the same command again "
                    "to resume."
                ) from None
            raise

    def _metrics(self) -> dict[str, Metric]:
        metrics = {
            name: METRICS.build(name, self.task, self.device, protocol=self.protocol)
            for name in self.metric_names
        }
        self.unavailable = {n: why for n, m in metrics.items() if (why := m.unavailable())}
        return {n: m for n, m in metrics.items() if n not in self.unavailable}

    def prepare(self, metrics: dict[str, Metric] | None = None) -> None:
        """Write run.json and fit every run-level state (a global method's directions) before any
        sample is generated by any process."""
        if metrics is None:
            metrics = self._metrics()
        info = self._prepare_out()
        provenance = info.get("method_provenance", {})
        for name in self.methods:
            if BatchLoop(self.run, name, self.sample_ids, 1).pending():
                method = self._method(name)
                provenance[name] = method.provenance()
        info.update(
            method_provenance=provenance,
            metrics_unavailable=self.unavailable,
            world_size=self.shard.world if self.shard.grouped else 1,
        )
        write_json(self.run.run_json, info)

    def _method(self, name: str):
        """The method, built once per process, with its run-level fit done (or loaded from the
        run)."""
        if name not in self.built:
            method = METHODS.build(name, self.task, self.device, params=self.params[name])
            with StatusLine(f"{name} fit") as line:
                method.progress = line.report
                method.fit(self.sample_ids, self.spec.seed, self.run.root / "fitted" / name)
            self.built[name] = method
        return self.built[name]

    def batch_size(self, name: str) -> int:
        return self.spec.batch_sizes.get(name, self.spec.batch_size)

    def _generate(self, name: str, metrics: dict[str, Metric]) -> None:
        loop = BatchLoop(self.run, name, self.shard.ids(self.sample_ids), self.batch_size(name))
        if not loop.pending():
            return
        method = self._method(name)

        def work(ids, status):
            method.progress = status
            try:
                return self._generate_batch(name, method, ids, metrics)
            except torch.cuda.OutOfMemoryError:
                raise UserError(
                    f"CUDA ran out of memory in method '{name}' at a batch of {len(ids)}. "
                    "Committed "
                    f"batches are kept: rerun with a smaller batch for it, e.g. --batch-size "
                    f"{name}={max(1, len(ids) // 2)}."
                ) from None

        loop.run_all(work)

    def _finish_shard(self, metrics: dict[str, Metric]) -> None:
        """An independent shard marks itself done; the one that finds every sample committed
        summarises (under the run's lock, so two finishing together summarise once)."""
        if any(BatchLoop(self.run, name, self.sample_ids, 1).pending() for name in self.methods):
            return
        try:
            with self.run.lock():
                self._finalize(metrics, self.run.read_run_json())
        except UserError:
            pass  # another shard is summarising right now

    def finalize_only(self) -> RunDir:
        """``cfbench finalize``: summarise a run whose shards have all finished."""
        damage.refuse_if_damaged(self.run, self.methods)
        missing = {
            n: len(BatchLoop(self.run, n, self.sample_ids, 1).pending()) for n in self.methods
        }
        if any(missing.values()):
            raise UserError(
                f"Run '{self.run.root}' is not complete: "
                + ", ".join(f"{n} lacks {k} sample(s)" for n, k in missing.items() if k)
                + ". Rerun the shards that died (the same command resumes them)."
            )
        with self.run.lock(wait=self.spec.wait):
            metrics = self._metrics()
            self._finalize(metrics, self.run.read_run_json())
        return self.run

    def _generate_batch(
        self, name: str, method, ids: list[str], metrics: dict[str, Metric]
    ) -> pd.DataFrame:
        samples = self.task.load(ids)
        images = quantize(samples.images.to(self.device))  # exactly what images/original/*.png hold
        source = samples.labels.to(self.device)
        batch = Batch(
            images,
            source,
            self.task.target_of(source),
            ids,
            generators=seeding.generators_for(self.spec.seed, ids),
            regions=None
            if self.spec.regions is None
            else load_user_regions(Path(self.spec.regions), ids, images.shape[-2:]).to(self.device),
        )
        _sync(self.device)
        t0 = time.perf_counter()
        cfs = method.generate(batch)
        _sync(self.device)
        seconds = (time.perf_counter() - t0) / len(ids)
        cfs.images = quantize(cfs.images)
        # scored as masks/ holds them, so the directory alone reproduces every metric
        if cfs.masks is not None:
            cfs.masks = quantize(cfs.masks)
        predictions, scores = score_batch(self.task, metrics, batch, samples, cfs)
        rows = {
            "sample_id": ids,
            "method": name,
            "source": source.tolist(),
            "target": batch.target.tolist(),
            **predictions,
            "steps": cfs.info["steps"].tolist(),
            "nfe": cfs.info["nfe"].tolist(),
            "seconds": seconds,
        }
        rows.update({k: v.tolist() for k, v in cfs.info.items() if k not in ("steps", "nfe")})
        if samples.files is not None:
            rows["source_file"] = samples.files
        rows.update(scores)
        save_pngs(self.run.images(), ids, images)
        save_pngs(self.run.images(name), ids, cfs.images)
        if cfs.masks is not None:
            save_pngs(self.run.masks(name), ids, cfs.masks)
        return pd.DataFrame(rows)

    # -- summary --------------------------------------------------------------------------------
    def _finalize(self, metrics: dict[str, Metric], info: dict) -> None:
        order = {s: i for i, s in enumerate(self.sample_ids)}
        frames = []
        for name in self.methods:
            rows = self.run.finished_rows(name)
            rows = rows[rows["sample_id"].isin(order)]
            frames.append(rows.sort_values("sample_id", key=lambda s: s.map(order)))
        samples = amortise_fits(
            pd.concat(frames, ignore_index=True), info.get("method_provenance", {})
        )
        write_frame(self.run.samples, samples)
        table, notes = summarize_methods(
            self.run, self.task.name, self.methods, samples, metrics, self.protocol
        )
        for note in notes:
            print(f"Warning: {note}", file=sys.stderr)
        write_frame(self.run.metrics, pd.DataFrame(table))
        from cfbench.figures import write_run_figures

        write_run_figures(self.run, self.methods, self.sample_ids, metrics)
        info.update(
            finished=True,
            ended=dt.datetime.now().isoformat(timespec="seconds"),
            metric_warnings=notes,
            metric_provenance={n: m.provenance() for n, m in metrics.items() if m.provenance()},
        )
        write_json(self.run.run_json, info)


def summarize_methods(
    run: RunDir,
    task_name: str,
    methods: list[str],
    samples: pd.DataFrame,
    metrics: dict[str, Metric],
    protocol,
) -> tuple[list[dict], list[str]]:
    """metrics.csv rows (one per method; each metric over the rows its protocol selects) and the
    metrics' warnings."""
    table = []
    for name in methods:
        rows = samples[samples["method"] == name]
        record = {"task": task_name, "method": name, "n": len(rows), "protocol": protocol.name}
        for col in METRICS.names():
            value, ci = (
                metrics[col].summarize(run, name, protocol.select(col, rows))
                if col in metrics
                else (None, None)
            )
            record[col], record[f"{col}_ci"] = value, ci
        table.append(record)
    return table, sorted({note for m in metrics.values() for note in m.notes})


def amortise_fits(samples: pd.DataFrame, method_provenance: dict) -> pd.DataFrame:
    """Columns ``fit_nfe`` and ``fit_seconds``: each run-level fit's cost (a global method's
    direction) divided over the samples of the class it edits, so that per-sample costs include it
    and do not depend on how the run was split."""
    samples = samples.assign(fit_nfe=0.0, fit_seconds=0.0)
    for method, provenance in method_provenance.items():
        for source, cost in provenance.get("fit", {}).get("amortised", {}).items():
            rows = (samples["method"] == method) & (samples["source"] == int(source))
            if rows.any():
                samples.loc[rows, "fit_nfe"] = cost["nfe"] / rows.sum()
                samples.loc[rows, "fit_seconds"] = cost["seconds"] / rows.sum()
    return samples


def _attempt(choose):
    """``choose()``, or the UserError it raised (to be announced to the other ranks)."""
    try:
        return choose()
    except UserError as err:
        return err


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
