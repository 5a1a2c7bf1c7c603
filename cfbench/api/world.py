"""The ``SyntheticWorld`` interface: a procedural world the shipped synthetic assets are trained on.

A world renders any (seed, index, label) deterministically, with its masks, and can render the
same scene under an intervention (another label, a world's own controls such as a background
tone). Model components train their shipped assets on a world handed to them by ``cfbench assets
build`` (the asset declares which, by its ``WORLDS`` name), so a component never imports a task
and a new world (faces) reuses every recipe that only needs this interface.
"""

from __future__ import annotations

from typing import Any, Protocol

import torch

# every shipped asset trains on scenes of TRAIN_SEED (and offsets of it) and is measured on
# HELDOUT_SEED; the tasks' evaluation splits use seeds of their own
TRAIN_SEED, HELDOUT_SEED = 101, 202


class SyntheticWorld(Protocol):
    size: int  # images are size x size
    classes: tuple[str, ...]  # class names; labels index them

    def render(self, seed: int, index: int, label: int, **controls: Any) -> Any:
        """One scene of class ``label`` with ``.image`` (H x W x 3 float in [0, 1]), ``.label`` and
        its masks; the same arguments always give the same pixels."""

    def partner(self, label: int) -> int:
        """The class a counterfactual of ``label`` turns into (the other class of its pair)."""

    def label_for(self, index: int, classes: tuple[int, ...] | None = None) -> int:
        """The class of scene ``index``: classes alternate, so any prefix is balanced."""

    def images(
        self, seed: int, n: int, classes: tuple[int, ...] | None = None, **controls: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Scenes 0..n-1 as uint8 N x 3 x size x size (compact in memory) and their labels."""

    def pairs(self, seed: int, n: int, **controls: Any) -> tuple[torch.Tensor, ...]:
        """Scenes 0..n-1 and the same scenes as the ``partner`` class (everything else unchanged),
        as float N x 3 x size x size images, with both labels: label interventions."""
