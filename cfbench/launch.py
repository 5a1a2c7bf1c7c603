"""``cfbench run --launcher slurm --shards K``: one run as a Slurm job array, through submitit.

This process prepares the run (run.json, and every run-level fit such as GCD's directions, so
no shard fits anything) and submits K array tasks; task k runs the same shard code path as a
torchrun rank (``Shard(k, K)``), committing batch by batch. A shard that Slurm preempts is
requeued by submitit and resumes from its committed batches. The last shard to finish
summarises the run; ``cfbench finalize RUN_DIR`` does it by hand. ``--launcher local`` runs the
same array as local processes (submitit's LocalExecutor) and waits for them: the way to try a
Slurm run on one machine, and how the tests exercise it.
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

from cfbench.errors import UserError


def _submitit():
    try:
        import submitit
    except ImportError:
        raise UserError(
            "--launcher slurm/local needs submitit, an optional extra: "
            "pip install 'cfbench-vce[scale]' (or pip install submitit)."
        ) from None
    return submitit


class ShardJob:
    """One array task; submitit requeues it (same arguments) after a preemption or timeout."""

    def __call__(self, spec, rank: int, world: int) -> str:
        from cfbench.runner import Runner

        run = Runner(dataclasses.replace(spec, shard=(rank, world))).execute()
        return str(run.root)

    def checkpoint(self, spec, rank: int, world: int):
        return _submitit().helpers.DelayedSubmission(self, spec, rank, world)


def submit(spec, launcher: str, shards: int, slurm: dict) -> tuple[Path, list]:
    """Prepare the run, submit ``shards`` array tasks; returns the run directory and the jobs."""
    from cfbench.runner import Runner

    if shards < 1:
        raise UserError(f"--shards must be at least 1 (got {shards}).")
    if launcher == "slurm" and not shutil.which("sbatch"):
        raise UserError(
            "--launcher slurm submits a Slurm job array, but this machine has no `sbatch` (not a "
            "Slurm login node). Run it on the cluster, or try the array here with "
            "--launcher local."
        )
    submitit = _submitit()
    runner = Runner(spec)
    with runner.run.lock(wait=spec.wait):
        runner.prepare()
    spec = dataclasses.replace(spec, out=runner.run.root.resolve())
    logs = runner.run.root / "jobs"
    if launcher == "local":
        executor = submitit.LocalExecutor(folder=str(logs))
        executor.update_parameters(timeout_min=int(slurm.get("time") or 24 * 60))
    else:
        executor = submitit.AutoExecutor(folder=str(logs), cluster="slurm")
        params = {
            "timeout_min": int(slurm["time"]) if slurm.get("time") else None,
            "slurm_partition": slurm.get("partition"),
            "gpus_per_node": slurm.get("gpus"),
            "cpus_per_task": slurm.get("cpus"),
            "slurm_array_parallelism": slurm.get("parallel"),
        }
        executor.update_parameters(
            name=f"cfbench-{runner.task.name}", **{k: v for k, v in params.items() if v is not None}
        )
    jobs = executor.map_array(ShardJob(), [spec] * shards, list(range(shards)), [shards] * shards)
    return runner.run.root, jobs
