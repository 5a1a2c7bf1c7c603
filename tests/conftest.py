"""Shared fixtures: the synthetic tasks on CPU with the shipped assets."""

from __future__ import annotations

from contextlib import contextmanager

import pytest
import torch

from cfbench import seeding
from cfbench.api.types import Batch
from cfbench.catalog import TASKS

torch.set_num_threads(2)


def make_task(name: str = "synth_cheetah_cougar"):
    entry = TASKS.get(name)
    return entry.load()(device=torch.device("cpu"), **entry.preset)


@pytest.fixture(scope="session")
def task():
    return make_task()


@pytest.fixture(scope="session")
def zebra_task():
    return make_task("synth_zebra_sorrel")


def make_batch(task, ids, seed=0, dtype=torch.float32, regions=None) -> Batch:
    """The runner's batch for ``ids``: images, labels, targets and per-sample generators."""
    s = task.load(ids)
    return Batch(
        s.images.to(dtype),
        s.labels,
        task.target_of(s.labels),
        ids,
        generators=seeding.generators_for(seed, ids),
        regions=regions,
    )


@contextmanager
def in_float64(*modules):
    """Run ``modules`` in float64 for the duration, then restore float32 (exactly: every float32
    is a float64). Conv and matmul kernels round differently at different batch sizes, and a few
    hundred Adam steps amplify that 1e-7 into visible differences (measured up to 0.14 in float32,
    1e-14 in float64); in float64 what a batch-independence test sees is the method's own logic."""
    for m in modules:
        m.double()
    try:
        yield
    finally:
        for m in modules:
            m.float()
