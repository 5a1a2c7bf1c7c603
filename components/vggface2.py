"""The VGGFace2 ResNet-50 that ACE's face metrics load (FVA's identity network, the CelebA
oracle's trunk), as torchvision's ResNet-50 in the Caffe layout those weights were converted
from: a stage's stride on its first 1x1 convolution (torchvision puts it on the 3x3) and a 3x3/2
max-pool with ``ceil_mode`` and no padding. torchvision's parameter names are the ones the
VGGFace2 pickle (``resnet50_ft_weight.pkl``) uses; the CelebA oracle's MatConvNet names
(``conv3_1_1x1_reduce_bn``, ...) are mapped onto them.
"""

from __future__ import annotations

import re

import torch
from torch import nn


def caffe_resnet50(num_classes: int = 8631) -> nn.Module:
    from torchvision.models import resnet50

    net = resnet50(weights=None, num_classes=num_classes)
    for stage in (net.layer2, net.layer3, net.layer4):
        stage[0].conv1.stride, stage[0].conv2.stride = (2, 2), (1, 1)
    net.maxpool = nn.MaxPool2d(3, 2, padding=0, ceil_mode=True)
    return net


def trunk(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """(B, 2048, 1, 1): the network up to its 7x7 average pool at 224 px (no classifier)."""
    x = net.maxpool(net.relu(net.bn1(net.conv1(x))))
    x = net.layer4(net.layer3(net.layer2(net.layer1(x))))
    return net.avgpool(x)


_PARTS = {"1x1_reduce": "conv1", "3x3": "conv2", "1x1_increase": "conv3"}
_BN = {"1x1_reduce": "bn1", "3x3": "bn2", "1x1_increase": "bn3"}


def torchvision_name(matconvnet: str) -> str:
    """``conv3_1_1x1_reduce_bn.weight`` -> ``layer2.0.bn1.weight`` (and the stem, projections)."""
    module, _, tensor = matconvnet.rpartition(".")
    if module == "conv1_7x7_s2":
        return f"conv1.{tensor}"
    if module == "conv1_7x7_s2_bn":
        return f"bn1.{tensor}"
    found = re.fullmatch(r"conv(\d)_(\d+)_(1x1_reduce|3x3|1x1_increase|1x1_proj)(_bn)?", module)
    if found is None:
        return matconvnet
    stage, block, part, bn = found.groups()
    where = f"layer{int(stage) - 1}.{int(block) - 1}"
    if part == "1x1_proj":
        return f"{where}.downsample.{1 if bn else 0}.{tensor}"
    return f"{where}.{(_BN if bn else _PARTS)[part]}.{tensor}"
