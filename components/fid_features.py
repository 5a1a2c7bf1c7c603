"""The feature extractor FID and sFID compare images in, as a torch-fidelity extractor.

Real tasks: torch-fidelity's Inception-v3 (pool3, 2048-d) from the local weights file
``pt_inception-2015-12-05-6726825d.pth`` (``CFBENCH_INCEPTION``). Synthetic tasks: the shipped
SimSiam's projector output (128-d), a stand-in for Inception, registered with torch-fidelity as
``cfbench-simsiam`` so both go through the same extraction code.
"""
from __future__ import annotations

from dataclasses import dataclass

from cfbench.components.base import Component

SIMSIAM = "cfbench-simsiam"
INCEPTION = "inception-v3-compat"


@dataclass(frozen=True)
class FeatureExtractor:
    """Which torch-fidelity extractor, with which weights file."""

    name: str
    weights: str
    dims: int


class FIDFeatures(Component):
    kind = "fid_features"
    what = "the FID feature extractor (torch-fidelity's Inception-v3 weights)"
    how = "torch-fidelity's Inception-v3 weights file pt_inception-2015-12-05-6726825d.pth (cfbench never downloads it)"

    @classmethod
    def load(cls, where, needs, shipped):
        if shipped:     # the synthetic SimSiam's weights file
            return FeatureExtractor(SIMSIAM, str(where), 128)
        return FeatureExtractor(INCEPTION, str(where), 2048)

    @classmethod
    def describe(cls, location, where):
        if location.startswith("asset:"):
            return (f"torch-fidelity extractor '{SIMSIAM}': projector output (128-d) of the project-trained "
                    "synthetic SimSiam, a stand-in for Inception-v3 pool3")
        return f"torch-fidelity Inception-v3 pool3 (2048-d) from {where}"
