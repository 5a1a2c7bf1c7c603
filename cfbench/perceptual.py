"""LPIPS networks (Zhang et al. 2018, the ``lpips`` package), shared by the LPIPS metric and by
methods whose loss is LPIPS (GCD's distance s).

LPIPS builds on torchvision's ImageNet backbone weights (AlexNet or VGG-16), which cfbench never
downloads: without them in torch's hub cache there is no LPIPS, and callers say so (a randomly
initialised backbone would give numbers that look like LPIPS and mean nothing).
"""

from __future__ import annotations

from pathlib import Path

import torch

BACKBONES = ("alex", "vgg")


def backbone_checkpoint(net: str = "alex") -> Path:
    """Where torchvision looks for the ImageNet weights LPIPS(``net``) builds on."""
    from torchvision.models import AlexNet_Weights, VGG16_Weights

    url = {"alex": AlexNet_Weights.IMAGENET1K_V1.url, "vgg": VGG16_Weights.IMAGENET1K_V1.url}[net]
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(url).name


def lpips_network(net: str, device: torch.device) -> torch.nn.Module | None:
    """LPIPS(``net``) in eval mode on ``device``, or None when its backbone weights are absent."""
    if not backbone_checkpoint(net).exists():
        return None
    import lpips

    return lpips.LPIPS(net=net, verbose=False).eval().to(device)
