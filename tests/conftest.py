"""Shared fixtures: the synthetic tasks on CPU with the shipped assets."""
from __future__ import annotations

import pytest
import torch

from cfbench.tasks import TASKS

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
