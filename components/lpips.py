"""LPIPS networks (Zhang et al. 2018, the ``lpips`` package): the LPIPS metric's and the loss of
methods whose distance is LPIPS (GCD's s).

LPIPS builds on torchvision's ImageNet backbone weights (AlexNet or VGG-16), which cfbench never
downloads: without them in torch's hub cache there is no LPIPS, and callers say so (a randomly
initialised backbone would give numbers that look like LPIPS and mean nothing). Every task offers
this component (``Task.common_components``); what it loads is a small holder that builds a
backbone's network on first use, or reports it missing.
"""

from __future__ import annotations

from pathlib import Path

import torch

from cfbench.api.component import Component

BACKBONES = {"alex": "AlexNet", "vgg": "VGG-16"}


def backbone_checkpoint(net: str = "alex") -> Path:
    """Where torchvision looks for the ImageNet weights LPIPS(``net``) builds on."""
    from torchvision.models import AlexNet_Weights, VGG16_Weights

    url = {"alex": AlexNet_Weights.IMAGENET1K_V1.url, "vgg": VGG16_Weights.IMAGENET1K_V1.url}[net]
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(url).name


class LPIPSNetworks:
    """LPIPS(``net``) per backbone, built on first use; None where its weights are absent."""

    def __init__(self):
        self._built: dict[tuple[str, str], torch.nn.Module] = {}

    def missing(self, net: str = "alex") -> str | None:
        """Why LPIPS(``net``) cannot be computed here (None when it can)."""
        path = backbone_checkpoint(net)
        if path.exists():
            return None
        return (
            f"LPIPS needs torchvision's {BACKBONES[net]} weights at {path} (offline: copy "
            f"{path.name} there); cfbench does not download them or use random weights"
        )

    def network(self, net: str, device: torch.device) -> torch.nn.Module | None:
        """LPIPS(``net``) in eval mode on ``device``, or None when its backbone weights are
        absent."""
        if self.missing(net):
            return None
        key = (net, str(device))
        if key not in self._built:
            import lpips

            self._built[key] = lpips.LPIPS(net=net, verbose=False).eval().to(device)
        return self._built[key]


class LPIPS(Component):
    kind = "lpips"
    what = "LPIPS networks"
    how = "torchvision's AlexNet / VGG-16 ImageNet weights in torch's hub cache"

    @classmethod
    def load(cls, where, needs, shipped):
        return LPIPSNetworks()

    @classmethod
    def describe(cls, location, where):
        return f"LPIPS (lpips package) on torchvision's ImageNet backbones in {torch.hub.get_dir()}"

    @classmethod
    def stand_in(cls, location):
        return False
