"""Running one run as several processes: torchrun / accelerate ranks and Slurm array shards.

A shard is ``(rank, world)``: it takes the run's sample ids ``ids[rank::world]`` (a fixed split of
the run's fixed order: no padding, no duplicates) and commits its batches exactly as a single
process does, so a shard that dies is redone by running the same command again, and the other
shards' samples are never recomputed. Per-sample seeding makes every sample's result independent
of which shard computed it.

torchrun and ``accelerate launch`` set ``WORLD_SIZE``/``RANK``/``LOCAL_RANK``; the ranks then form
a ``torch.distributed`` group (gloo on CPU, NCCL on GPUs) that rank 0 uses to announce the run
directory and to wait for everyone before it summarises. Slurm shards (``--launcher slurm``,
submitit) are separate jobs with no group: each marks itself done in the run directory and the
last one to finish summarises (or ``cfbench finalize RUN_DIR``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Shard:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    grouped: bool = False  # ranks of one torch.distributed job (else independent jobs or alone)

    @property
    def leader(self) -> bool:
        return self.rank == 0

    def ids(self, sample_ids: list[str]) -> list[str]:
        return sample_ids[self.rank :: self.world]


def from_environment() -> Shard:
    """The shard torchrun or accelerate launched this process as (one process: rank 0 of 1)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Shard()
    return Shard(
        int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")), grouped=True
    )


class Group:
    """The collective operations a run needs, as no-ops for a single process or independent
    shards."""

    def __init__(self, shard: Shard, device: torch.device):
        self.shard = shard
        self.active = shard.grouped
        if self.active and not torch.distributed.is_initialized():
            backend = "nccl" if device.type == "cuda" else "gloo"
            torch.distributed.init_process_group(
                backend, device_id=device if device.type == "cuda" else None
            )

    def barrier(self) -> None:
        if self.active:
            torch.distributed.barrier()

    def broadcast(self, value):
        """Rank 0's ``value`` on every rank."""
        if not self.active:
            return value
        box = [value]
        torch.distributed.broadcast_object_list(box, src=0)
        return box[0]

    def close(self) -> None:
        if self.active and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
