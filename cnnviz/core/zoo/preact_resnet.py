"""Pre-activation ResNet.

Reference:
    K. He, X. Zhang, S. Ren and J. Sun, 2016. "Identity Mappings in Deep Residual Networks".
    European Conference on Computer Vision (ECCV), LNCS 9908, 630-645.

Moving batch norm and ReLU in front of each convolution (BN-ReLU-conv) leaves the shortcut a
pure identity from the input to the output of the network: nothing is applied after the
addition. A final BN-ReLU before the pooling makes up for the missing last activation.

The original size is PreActResNet-18 on 3x224x224 (ResNet-18 stem and stages; no batch norm in
the stem, since the first block normalises its input); the teaching size is the CIFAR form
(3x3 stride-1 stem, no max pool) at a quarter of the width.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ._common import resolve

__all__ = ["PreActBlock", "PreActResNet", "preact_resnet18"]


class PreActBlock(nn.Module):
    """BN-ReLU-conv3x3, BN-ReLU-conv3x3, plus shortcut.

    Where the shape changes, the shortcut is a 1x1 convolution applied to the pre-activated
    input (after ``bn1``/``relu1``), as in the paper's code.

    Args:
        inplanes: Input channels.
        planes: Output channels.
        stride: Stride of the first convolution.
        dropout: Dropout between the two convolutions (Wide ResNet); 0 leaves it out.
    """

    def __init__(self, inplanes: int, planes: int, stride: int = 1, dropout: float = 0.0) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(inplanes)
        self.relu1 = nn.ReLU()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu2 = nn.ReLU()
        self.dropout = nn.Dropout(dropout) if dropout > 0 else None
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.shortcut: nn.Module | None = None
        if stride != 1 or inplanes != planes:
            self.shortcut = nn.Conv2d(inplanes, planes, 1, stride=stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu1(self.bn1(x))
        identity = x if self.shortcut is None else self.shortcut(out)
        out = self.relu2(self.bn2(self.conv1(out)))
        if self.dropout is not None:
            out = self.dropout(out)
        return self.conv2(out) + identity


class PreActResNet(nn.Module):
    """Pre-activation ResNet with basic blocks.

    Args:
        layers: Blocks per stage.
        num_classes: Number of output classes.
        in_channels: Number of input channels.
        planes: Channels of each stage.
        small_input: CIFAR stem (3x3 stride-1 convolution, no max pool) for 32x32 images.
    """

    def __init__(
        self,
        layers: Sequence[int] = (2, 2, 2, 2),
        num_classes: int = 1000,
        in_channels: int = 3,
        planes: Sequence[int] = (64, 128, 256, 512),
        small_input: bool = False,
    ) -> None:
        super().__init__()
        if small_input:
            self.conv1 = nn.Conv2d(in_channels, planes[0], 3, stride=1, padding=1, bias=False)
            self.maxpool: nn.MaxPool2d | None = None
        else:
            self.conv1 = nn.Conv2d(in_channels, planes[0], 7, stride=2, padding=3, bias=False)
            self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        inplanes = planes[0]
        for i, (width, blocks) in enumerate(zip(planes, layers, strict=True), start=1):
            stride = 1 if i == 1 else 2
            stage = [PreActBlock(inplanes, width, stride)]
            stage += [PreActBlock(width, width) for _ in range(1, blocks)]
            self.add_module(f"layer{i}", nn.Sequential(*stage))
            inplanes = width
        self.num_stages = len(layers)
        self.bn = nn.BatchNorm2d(inplanes)
        self.relu = nn.ReLU()
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(inplanes, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)
        if self.maxpool is not None:
            x = self.maxpool(x)
        for i in range(1, self.num_stages + 1):
            x = getattr(self, f"layer{i}")(x)
        x = self.relu(self.bn(x))
        x = torch.flatten(self.avgpool(x), 1)
        return self.fc(x)


def preact_resnet18(
    size: str = "teaching", num_classes: int | None = None, in_channels: int | None = None
) -> PreActResNet:
    """PreActResNet-18: ImageNet layout (original) or CIFAR layout at quarter width (teaching)."""
    spec = resolve(size, num_classes, in_channels)
    if spec.original:
        return PreActResNet((2, 2, 2, 2), spec.num_classes, spec.in_channels)
    return PreActResNet(
        (2, 2, 2, 2), spec.num_classes, spec.in_channels, (16, 32, 64, 128), small_input=True
    )
