"""The ``Attribution`` interface: an attribution map method, registered by name
(``ATTRIBUTIONS`` in ``cfbench/catalog.py``) like every other kind of thing.

An attribution explains the classifier under explanation on an image as one (B,1,H,W) map (the
channel sum where a method attributes per channel). It is built once per task and device, so one
that fits something first (BB-LIG's directions) fits it once and keeps it on the instance.
Methods that make masks from an attribution and experiments that score attributions
(``cfbench localize``) reach them through the registry.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import torch

if TYPE_CHECKING:
    from cfbench.api.task import Task


class Attribution:
    name: ClassVar[str]  # the registry entry (set by ``ATTRIBUTIONS.build``)
    label: ClassVar[str]  # its row label in tables (SLCF's Table 4)

    def __init__(self, task: Task, device: torch.device):
        self.task = task
        self.device = device

    def explain(self, x: torch.Tensor, source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """(B,1,H,W) map of the evidence for ``source`` on images ``x`` (``target``: the class a
        counterfactual would reach, for attributions that walk toward it)."""
        raise NotImplementedError
