"""The feature extractor FID and sFID compare images in, as a torch-fidelity extractor.

Real tasks: torch-fidelity's Inception-v3 (pool3, 2048-d) from the local weights file
``pt_inception-2015-12-05-6726825d.pth`` (``CFBENCH_INCEPTION``). Synthetic tasks: the shipped
SimSiam's projector output (128-d), a stand-in for Inception, registered with torch-fidelity as
``cfbench-simsiam`` so both go through the same extraction code.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch

from cfbench.api.component import Component

SIMSIAM = "cfbench-simsiam"
INCEPTION = "inception-v3-compat"


@dataclass(frozen=True)
class FeatureExtractor:
    """Which torch-fidelity extractor, with which weights file."""

    name: str
    weights: str
    dims: int


@functools.cache
def register_simsiam() -> None:
    """Register cfbench's SimSiam with torch-fidelity as ``cfbench-simsiam`` (weights from
    ``feature_extractor_weights_path``). Done on first use: torch-fidelity is slow to import."""
    from safetensors.torch import load_file
    from torch_fidelity.feature_extractor_base import FeatureExtractorBase
    from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY, register_feature_extractor

    from cfbench.components.simsiam import SimSiam

    class SimSiamFeatures(FeatureExtractorBase):
        def __init__(self, name, features_list, feature_extractor_weights_path=None, **kwargs):
            super().__init__(name, features_list)
            if feature_extractor_weights_path is None:
                raise ValueError(
                    f"{SIMSIAM} needs feature_extractor_weights_path (a SimSiam safetensors file)"
                )
            self.simsiam = SimSiam()
            self.simsiam.load_state_dict(load_file(str(feature_extractor_weights_path)))

        @staticmethod
        def get_provided_features_list():
            return ("128",)

        @staticmethod
        def get_default_feature_layer_for_metric(metric):
            return "128"

        @staticmethod
        def can_be_compiled():
            return False

        @staticmethod
        def get_dummy_input_for_compile():
            return torch.zeros(1, 3, 64, 64, dtype=torch.uint8)

        def forward(self, x):
            """uint8 B x 3 x H x W (torch-fidelity's convention) -> the 128-d embedding."""
            return (self.simsiam.embed(x.float() / 255),)

    if SIMSIAM not in FEATURE_EXTRACTORS_REGISTRY:
        register_feature_extractor(SIMSIAM, SimSiamFeatures)


class FIDFeatures(Component):
    kind = "fid_features"
    what = "the FID feature extractor (torch-fidelity's Inception-v3 weights)"
    how = (
        "torch-fidelity's Inception-v3 weights file pt_inception-2015-12-05-6726825d.pth (cfbench "
        "never downloads it)"
    )

    @classmethod
    def load(cls, where, needs, shipped):
        if shipped:  # the synthetic SimSiam's weights file
            register_simsiam()
            return FeatureExtractor(SIMSIAM, str(where), 128)
        return FeatureExtractor(INCEPTION, str(where), 2048)

    @classmethod
    def describe(cls, location, where):
        if location.startswith("asset:"):
            return (
                f"torch-fidelity extractor '{SIMSIAM}': projector output (128-d) of the "
                "project-trained "
                "synthetic SimSiam, a stand-in for Inception-v3 pool3"
            )
        return f"torch-fidelity Inception-v3 pool3 (2048-d) from {where}"
