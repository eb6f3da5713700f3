"""Plain nets: the CIFAR ResNets of He et al. without their shortcuts.

Reference:
    K. He, X. Zhang, S. Ren and J. Sun, 2016. "Deep Residual Learning for Image Recognition".
    IEEE Conference on Computer Vision and Pattern Recognition (CVPR), section 4.2 and Fig. 6.

``plain20`` is the 20-layer "plain" network of the paper: a 3x3 convolution, three stages of
six 3x3 conv-BN-ReLU units with 16, 32 and 64 filters (the first unit of stages two and three
has stride 2), global average pooling and a linear layer. Every unit is its own module
(``layer2.0`` ...), so in the editor two consecutive units can be selected and wrapped in a
residual connection: doing that nine times turns ``plain20`` into a ResNet-20 (with projection
shortcuts where the width doubles). ``plain56`` is the deeper plain net whose training error is
*higher* than ``plain20``'s: the degradation problem that motivated residual learning.
"""

from __future__ import annotations

import torch
from torch import nn

from ._common import resolve

__all__ = ["ConvBNReLU", "PlainNet", "plain20", "plain56"]


class ConvBNReLU(nn.Module):
    """A 3x3 convolution (no bias), batch norm and ReLU.

    Args:
        in_planes: Input channels.
        planes: Output channels.
        stride: Stride of the convolution.
    """

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn(self.conv(x)))


class PlainNet(nn.Module):
    """The plain CIFAR network of He et al.: 6n+2 layers, 16-32-64 filters, no shortcuts.

    Args:
        depth: 6n+2 (20, 32, 44, 56, 110).
        num_classes: Number of output classes.
        in_channels: Number of input channels.
    """

    def __init__(self, depth: int = 20, num_classes: int = 10, in_channels: int = 3) -> None:
        super().__init__()
        if (depth - 2) % 6 != 0:
            raise ValueError(f"depth must be 6n+2, got {depth}")
        n = (depth - 2) // 6
        self.conv1 = nn.Conv2d(in_channels, 16, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.relu = nn.ReLU()
        inplanes = 16
        for i, planes in enumerate((16, 32, 64), start=1):
            units = []
            for j in range(2 * n):
                stride = 2 if i > 1 and j == 0 else 1
                units.append(ConvBNReLU(inplanes, planes, stride))
                inplanes = planes
            self.add_module(f"layer{i}", nn.Sequential(*units))
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(64, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        x = torch.flatten(self.avgpool(x), 1)
        return self.fc(x)


def plain20(
    size: str = "teaching", num_classes: int | None = None, in_channels: int | None = None
) -> PlainNet:
    """Plain-20 (n=3): ResNet-20 without shortcuts; the same net at both sizes."""
    spec = resolve(size, num_classes, in_channels, original_classes=10)
    return PlainNet(20, spec.num_classes, spec.in_channels)


def plain56(
    size: str = "teaching", num_classes: int | None = None, in_channels: int | None = None
) -> PlainNet:
    """Plain-56 (n=9): deeper, yet it trains worse than Plain-20; the same net at both sizes."""
    spec = resolve(size, num_classes, in_channels, original_classes=10)
    return PlainNet(56, spec.num_classes, spec.in_channels)
