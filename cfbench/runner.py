"""``cfbench run``: generate counterfactuals batch by batch, score them, write the run directory.

Resume: samples are committed per batch (images first, then the batch's ``parts/`` file), so a
killed run started again with the same arguments skips every committed sample. Without ``--out``
the newest unfinished run of the same configuration under ``results/runs/`` is resumed.
``RunSpec.from_run_json`` repeats a finished run from its run.json.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import sys
import time
from pathlib import Path

import pandas as pd
import torch

from cfbench import damage, distributed, guard, numerics, seeding
from cfbench.api.method import SharedFits
from cfbench.api.metric import Metric
from cfbench.api.types import Batch
from cfbench.batches import BatchLoop, StatusLine
from cfbench.catalog import METHODS, PROTOCOLS, TASKS
from cfbench.device import resolve_device
from cfbench.distributed import Group, Shard
from cfbench.errors import UserError
from cfbench.provenance import git_commit, package_versions
from cfbench.results import RunDir, quantize, save_pngs, write_frame, write_json
from cfbench.scoring import score_batch
from cfbench.spec import RunSpec, parse_overrides
from cfbench.summary import amortise_fits, build_metrics, metric_names, summarize_methods
from cfbench.user_regions import check_user_regions, load_user_regions


def supports(task, method_name: str) -> bool:
    """Whether ``task`` can provide every component method ``method_name`` needs there."""
    needed = METHODS.get(method_name).load().requires(METHODS.params(method_name, task))
    return all(task.has_component(r) for r in needed)


class Runner:
    def __init__(self, spec: RunSpec, shared_fits: SharedFits | None = None):
        """``shared_fits``: a study's store of fits its runs may reuse (``SharedFits``)."""
        self.spec = spec
        self.shared_fits = shared_fits
        spec.check_values()
        TASKS.get(spec.task)
        self.methods = METHODS.parse_list(",".join(spec.methods))
        spec.check_methods()
        self.metric_names = metric_names(spec.metrics)
        self.protocol = PROTOCOLS.get(spec.protocol).load()
        overrides = parse_overrides(spec.overrides, self.methods)
        self.shard = Shard(*spec.shard) if spec.shard else distributed.from_environment()
        self.device = resolve_device(spec.device, self.shard.local_rank)
        self.group = Group(self.shard, self.device)
        self.task = TASKS.build(spec.task, device=self.device)
        dtype, per_role = numerics.parse_dtypes(spec.dtype)
        numerics.check(dtype, per_role, spec.compile, self.device)
        self.task.set_numerics(dtype, per_role, spec.compile)
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
        # built now too, so what a method checks of the task (a classifier it cannot split)
        # stops the run before any work; fitted on first use (``_method``)
        self.built = {
            m: METHODS.build(m, self.task, self.device, params=self.params[m]) for m in self.methods
        }
        self.fitted: set[str] = set()
        self.sample_ids = _sample_ids(self.task, spec)
        if spec.regions is not None:
            _check_regions(spec, self.sample_ids, self.task, self.hparams)
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
        if spec.dtype != "float32" or spec.compile is not None:  # absent: as every earlier run
            self.config["numerics"] = {"dtype": spec.dtype, "compile": spec.compile}
        if spec.regions is not None:
            self.config["regions"] = str(Path(spec.regions).resolve())
        # rank 0 of a torchrun job chooses the directory and announces it (or the reason it cannot)
        chosen = self.group.broadcast(
            guard.attempt(lambda: guard.choose_out(spec.out, self.task.name, self.config))
            if self.shard.leader or not self.shard.grouped
            else None
        )
        if isinstance(chosen, UserError):
            raise chosen
        self.run = RunDir(chosen)

    @property
    def coordinator(self) -> bool:
        """Prepares the directory and fits: a single process, or rank 0 of a torchrun job (the
        submitting process prepares for independent shards)."""
        return self.shard.leader and self.spec.shard is None

    def _prepare_out(self) -> dict:
        guard.open_for_writing(self.run.root)
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
        info.setdefault("batch_sizes", {m: self.spec.batch_size_of(m) for m in self.methods})
        write_json(self.run.run_json, info)
        return info

    # -- generation -----------------------------------------------------------------------------
    def execute(self) -> RunDir:
        """Generate this process's share of the run and, when it is the last, summarise it."""
        if guard.finished_here(self.run, self.config, self.methods):
            print(
                f"{self.run.root} already holds this run, finished: nothing to do "
                "(`cfbench rescore` recomputes its metrics).",
                file=sys.stderr,
            )
            return self.run
        try:
            lock = guard.writer_lock(
                self.run, self.shard, self.group, self.spec.wait, self.spec.shard is not None
            )
            with lock, guard.disk_full(self.run.root):
                if self.coordinator and guard.taken_meanwhile(self.run, self.config, self.methods):
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

    def _metrics(self) -> dict[str, Metric]:
        metrics = build_metrics(self.metric_names, self.task, self.device, self.protocol)
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
        method = self.built[name]
        if name not in self.fitted:
            method.shared_fits = self.shared_fits
            with StatusLine(f"{name} fit") as line:
                method.progress = line.report
                method.fit(self.sample_ids, self.spec.seed, self.run.root / "fitted" / name)
            self.fitted.add(name)
        return method

    def _generate(self, name: str, metrics: dict[str, Metric]) -> None:
        ids = self.shard.ids(self.sample_ids)
        loop = BatchLoop(self.run, name, ids, self.spec.batch_size_of(name))
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
            numerics={
                role: setting.describe()
                for role, setting in self.task.numerics.items()
                if role in self.components
                and (setting.dtype != "float32" or setting.backend is not None)
            },
        )
        write_json(self.run.run_json, info)


def _sample_ids(task, spec: RunSpec) -> list[str]:
    ids = task.sample_ids(spec.n)
    if spec.n is not None and len(ids) < spec.n:
        print(
            f"Note: task '{spec.task}' has {len(ids)} samples, fewer than --n {spec.n}; "
            f"running all {len(ids)}.",
            file=sys.stderr,
        )
    return ids


def _check_regions(spec: RunSpec, ids: list[str], task, hparams: dict) -> None:
    """The user's region file fits the samples; say which methods ignore it."""
    check_user_regions(Path(spec.regions), ids, task.image_size)
    ignoring = [m for m in hparams if "region" not in hparams[m]]
    if ignoring:
        print(
            f"Note: --regions constrains region-based methods only; {', '.join(ignoring)} "
            "ignore it.",
            file=sys.stderr,
        )


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
