"""Wide Residual Networks for CIFAR (WRN-d-k).

Reference:
    S. Zagoruyko and N. Komodakis, 2016. "Wide Residual Networks". British Machine Vision
    Conference (BMVC).

A WRN-d-k has d layers and k times the filters of the CIFAR ResNet (16k, 32k, 64k in three
stages of (d-4)/6 pre-activation basic blocks), with optional dropout between the two
convolutions of a block. The paper's point: a shallow, wide net (WRN-16-4, 2.7M parameters)
matches a thin 1001-layer one and trains far faster. WRN-28-10 has 36.5M parameters.

Here WRN-16-4 and WRN-28-10 are the original sizes (3x32x32, as in the paper); at teaching
size they keep their depth and use k=2 (WRN-16-2, WRN-28-2), which trains on a CPU. The
ImageNet wide ResNets (``wide_resnet50_2``, ``wide_resnet101_2``) live in :mod:`.resnet`, as
in torchvision.
"""

from __future__ import annotations

import torch
from torch import nn

from ._common import resolve
from .preact_resnet import PreActBlock

__all__ = ["WideResNet", "wrn16_4", "wrn28_10"]


class WideResNet(nn.Module):
    """WRN-depth-widen_factor for 32x32 images.

    Args:
        depth: Number of layers, 6n+4.
        widen_factor: k, the width multiplier of the three stages.
        num_classes: Number of output classes.
        in_channels: Number of input channels.
        dropout: Dropout between the convolutions of each block (0.3 in some of the paper's
            runs); 0 leaves it out.
    """

    def __init__(
        self,
        depth: int = 16,
        widen_factor: int = 4,
        num_classes: int = 10,
        in_channels: int = 3,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if (depth - 4) % 6 != 0:
            raise ValueError(f"depth must be 6n+4, got {depth}")
        n = (depth - 4) // 6
        widths = (16 * widen_factor, 32 * widen_factor, 64 * widen_factor)
        self.conv1 = nn.Conv2d(in_channels, 16, 3, stride=1, padding=1, bias=False)
        inplanes = 16
        for i, width in enumerate(widths, start=1):
            stride = 1 if i == 1 else 2
            blocks = [PreActBlock(inplanes, width, stride, dropout)]
            blocks += [PreActBlock(width, width, 1, dropout) for _ in range(1, n)]
            self.add_module(f"layer{i}", nn.Sequential(*blocks))
            inplanes = width
        self.bn = nn.BatchNorm2d(inplanes)
        self.relu = nn.ReLU()
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(inplanes, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)
        x = self.layer3(self.layer2(self.layer1(x)))
        x = self.relu(self.bn(x))
        x = torch.flatten(self.avgpool(x), 1)
        return self.fc(x)


def wrn16_4(
    size: str = "teaching", num_classes: int | None = None, in_channels: int | None = None
) -> WideResNet:
    """WRN-16-4 (2.7M parameters) at original size; WRN-16-2 at teaching size."""
    spec = resolve(size, num_classes, in_channels, original_classes=10)
    k = 4 if spec.original else 2
    return WideResNet(16, k, spec.num_classes, spec.in_channels)


def wrn28_10(
    size: str = "teaching", num_classes: int | None = None, in_channels: int | None = None
) -> WideResNet:
    """WRN-28-10 (36.5M parameters) at original size; WRN-28-2 (1.5M) at teaching size.

    Ten times the width of the CIFAR ResNet takes seconds per batch on a laptop CPU; the
    teaching size keeps the depth and a width factor of two.
    """
    spec = resolve(size, num_classes, in_channels, original_classes=10)
    k = 10 if spec.original else 2
    return WideResNet(28, k, spec.num_classes, spec.in_channels)
