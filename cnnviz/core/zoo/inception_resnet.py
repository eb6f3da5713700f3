"""Inception-ResNet-v2.

Reference:
    C. Szegedy, S. Ioffe, V. Vanhoucke and A. A. Alemi, 2017. "Inception-v4, Inception-ResNet
    and the Impact of Residual Connections on Learning". AAAI Conference on Artificial
    Intelligence.

Inception-ResNet blocks replace the concatenation at the end of an Inception module by a 1x1
convolution back to the input width and a residual addition. Section 3.3 of the paper: with
more than about 1000 filters the residual variants "died" early in training unless the residual
branch was scaled down by 0.1-0.3 before the addition, which is what ``scale`` does here
(0.17, 0.10 and 0.20 for the 35x35, 17x17 and 8x8 blocks, as in the authors' released model).

The original size follows the released TF-slim model as ported to PyTorch (Cadene's
``pretrainedmodels`` and ``timm``; module names as there: ``conv2d_1a``, ``mixed_5b``,
``repeat``, ``mixed_6a``, ``repeat_1``, ``mixed_7a``, ``repeat_2``, ``block8``, ``conv2d_7b``,
``last_linear``): 3x299x299, 55,843,464 parameters for 1000 classes. Its stem and ``mixed_5b``
differ from Figure 3 of the paper, which is what everyone actually trained. The teaching size
is a quarter of the width, two blocks of each kind and a small stem, for 3x32x32.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ._common import resolve

__all__ = [
    "BasicConv2d",
    "Block8",
    "Block17",
    "Block35",
    "InceptionResNetV2",
    "Mixed5b",
    "Mixed6a",
    "Mixed7a",
    "inception_resnet_v2",
]


class BasicConv2d(nn.Module):
    """Convolution without bias, batch norm (eps 0.001), ReLU.

    Args:
        in_channels: Input channels.
        out_channels: Output channels.
        kernel_size: Kernel size (an int or a (height, width) pair).
        stride: Stride.
        padding: Padding (an int or a pair).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int = 1,
        padding: int | tuple[int, int] = 0,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, bias=False)
        self.bn = nn.BatchNorm2d(out_channels, eps=0.001)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn(self.conv(x)))


def _w(c: int, d: int) -> int:
    return c // d


class Mixed5b(nn.Module):
    """Inception module after the stem (35x35 grid): 1x1 | 1x1-5x5 | 1x1-3x3-3x3 | pool-1x1."""

    def __init__(self, in_channels: int, d: int = 1) -> None:
        super().__init__()
        self.branch0 = BasicConv2d(in_channels, _w(96, d), 1)
        self.branch1 = nn.Sequential(
            BasicConv2d(in_channels, _w(48, d), 1), BasicConv2d(_w(48, d), _w(64, d), 5, padding=2)
        )
        self.branch2 = nn.Sequential(
            BasicConv2d(in_channels, _w(64, d), 1),
            BasicConv2d(_w(64, d), _w(96, d), 3, padding=1),
            BasicConv2d(_w(96, d), _w(96, d), 3, padding=1),
        )
        self.branch3 = nn.Sequential(
            nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False),
            BasicConv2d(in_channels, _w(64, d), 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch0(x), self.branch1(x), self.branch2(x), self.branch3(x)], 1)


class _ResidualInception(nn.Module):
    """Shared forward of the Inception-ResNet blocks: branches, cat, 1x1 up, scale, add."""

    branches: nn.ModuleList
    conv2d: nn.Conv2d

    def __init__(self, scale: float, activate: bool) -> None:
        super().__init__()
        self.scale = scale
        self.relu = nn.ReLU() if activate else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.cat([branch(x) for branch in self.branches], 1)
        # Scaling the residual keeps very wide residual nets from blowing up early on.
        out = self.conv2d(out) * self.scale + x
        if self.relu is not None:
            out = self.relu(out)
        return out


class Block35(_ResidualInception):
    """Inception-ResNet-A (35x35 grid): 1x1 | 1x1-3x3 | 1x1-3x3-3x3, then 1x1 and add.

    Args:
        channels: Input and output channels (320).
        scale: Factor of the residual branch.
        d: Width divisor.
    """

    def __init__(self, channels: int, scale: float = 0.17, d: int = 1) -> None:
        super().__init__(scale, activate=True)
        self.branches = nn.ModuleList(
            [
                BasicConv2d(channels, _w(32, d), 1),
                nn.Sequential(
                    BasicConv2d(channels, _w(32, d), 1),
                    BasicConv2d(_w(32, d), _w(32, d), 3, padding=1),
                ),
                nn.Sequential(
                    BasicConv2d(channels, _w(32, d), 1),
                    BasicConv2d(_w(32, d), _w(48, d), 3, padding=1),
                    BasicConv2d(_w(48, d), _w(64, d), 3, padding=1),
                ),
            ]
        )
        self.conv2d = nn.Conv2d(_w(128, d), channels, 1)


class Block17(_ResidualInception):
    """Inception-ResNet-B (17x17 grid): 1x1 | 1x1-1x7-7x1, then 1x1 and add.

    Args:
        channels: Input and output channels (1088).
        scale: Factor of the residual branch.
        d: Width divisor.
    """

    def __init__(self, channels: int, scale: float = 0.10, d: int = 1) -> None:
        super().__init__(scale, activate=True)
        self.branches = nn.ModuleList(
            [
                BasicConv2d(channels, _w(192, d), 1),
                nn.Sequential(
                    BasicConv2d(channels, _w(128, d), 1),
                    BasicConv2d(_w(128, d), _w(160, d), (1, 7), padding=(0, 3)),
                    BasicConv2d(_w(160, d), _w(192, d), (7, 1), padding=(3, 0)),
                ),
            ]
        )
        self.conv2d = nn.Conv2d(_w(384, d), channels, 1)


class Block8(_ResidualInception):
    """Inception-ResNet-C (8x8 grid): 1x1 | 1x1-1x3-3x1, then 1x1 and add.

    Args:
        channels: Input and output channels (2080).
        scale: Factor of the residual branch.
        activate: Apply a ReLU after the addition (the last block of the network does not).
        d: Width divisor.
    """

    def __init__(
        self, channels: int, scale: float = 0.20, activate: bool = True, d: int = 1
    ) -> None:
        super().__init__(scale, activate)
        self.branches = nn.ModuleList(
            [
                BasicConv2d(channels, _w(192, d), 1),
                nn.Sequential(
                    BasicConv2d(channels, _w(192, d), 1),
                    BasicConv2d(_w(192, d), _w(224, d), (1, 3), padding=(0, 1)),
                    BasicConv2d(_w(224, d), _w(256, d), (3, 1), padding=(1, 0)),
                ),
            ]
        )
        self.conv2d = nn.Conv2d(_w(448, d), channels, 1)


class Mixed6a(nn.Module):
    """Reduction-A (35 -> 17): 3x3/2 | 1x1-3x3-3x3/2 | max pool/2, concatenated."""

    def __init__(self, in_channels: int, d: int = 1) -> None:
        super().__init__()
        self.branch0 = BasicConv2d(in_channels, _w(384, d), 3, stride=2)
        self.branch1 = nn.Sequential(
            BasicConv2d(in_channels, _w(256, d), 1),
            BasicConv2d(_w(256, d), _w(256, d), 3, padding=1),
            BasicConv2d(_w(256, d), _w(384, d), 3, stride=2),
        )
        self.branch2 = nn.MaxPool2d(3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch0(x), self.branch1(x), self.branch2(x)], 1)


class Mixed7a(nn.Module):
    """Reduction-B (17 -> 8): three convolution branches ending in stride 2, and a max pool."""

    def __init__(self, in_channels: int, d: int = 1) -> None:
        super().__init__()
        self.branch0 = nn.Sequential(
            BasicConv2d(in_channels, _w(256, d), 1),
            BasicConv2d(_w(256, d), _w(384, d), 3, stride=2),
        )
        self.branch1 = nn.Sequential(
            BasicConv2d(in_channels, _w(256, d), 1),
            BasicConv2d(_w(256, d), _w(288, d), 3, stride=2),
        )
        self.branch2 = nn.Sequential(
            BasicConv2d(in_channels, _w(256, d), 1),
            BasicConv2d(_w(256, d), _w(288, d), 3, padding=1),
            BasicConv2d(_w(288, d), _w(320, d), 3, stride=2),
        )
        self.branch3 = nn.MaxPool2d(3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch0(x), self.branch1(x), self.branch2(x), self.branch3(x)], 1)


class InceptionResNetV2(nn.Module):
    """Inception-ResNet-v2: stem, mixed_5b, A blocks, reduction, B blocks, reduction, C blocks.

    Args:
        num_classes: Number of output classes.
        in_channels: Number of input channels.
        width_divisor: Divide every filter count by this (teaching sizes).
        repeats: Number of A, B and C blocks (10, 20, 9 plus the final C block, originally).
        small_input: A stride-1 stem with a single 2x2 max pool, for 32x32 images.
        dropout: Dropout before the classifier (0.2 in the released model's training).
    """

    def __init__(
        self,
        num_classes: int = 1000,
        in_channels: int = 3,
        width_divisor: int = 1,
        repeats: Sequence[int] = (10, 20, 9),
        small_input: bool = False,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        d = width_divisor
        if small_input:
            self.conv2d_1a = BasicConv2d(in_channels, _w(32, d), 3, padding=1)
            self.conv2d_2a = BasicConv2d(_w(32, d), _w(32, d), 3, padding=1)
            self.conv2d_2b = BasicConv2d(_w(32, d), _w(64, d), 3, padding=1)
            self.maxpool_3a = nn.MaxPool2d(2, stride=2)
            self.conv2d_3b = BasicConv2d(_w(64, d), _w(80, d), 1)
            self.conv2d_4a = BasicConv2d(_w(80, d), _w(192, d), 3, padding=1)
            self.maxpool_5a: nn.MaxPool2d | None = None
        else:
            self.conv2d_1a = BasicConv2d(in_channels, 32, 3, stride=2)
            self.conv2d_2a = BasicConv2d(32, 32, 3)
            self.conv2d_2b = BasicConv2d(32, 64, 3, padding=1)
            self.maxpool_3a = nn.MaxPool2d(3, stride=2)
            self.conv2d_3b = BasicConv2d(64, 80, 1)
            self.conv2d_4a = BasicConv2d(80, 192, 3)
            self.maxpool_5a = nn.MaxPool2d(3, stride=2)
        a, b, c = _w(320, d), _w(1088, d), _w(2080, d)
        self.mixed_5b = Mixed5b(_w(192, d), d)
        self.repeat = nn.Sequential(*(Block35(a, 0.17, d) for _ in range(repeats[0])))
        self.mixed_6a = Mixed6a(a, d)
        self.repeat_1 = nn.Sequential(*(Block17(b, 0.10, d) for _ in range(repeats[1])))
        self.mixed_7a = Mixed7a(b, d)
        self.repeat_2 = nn.Sequential(*(Block8(c, 0.20, True, d) for _ in range(repeats[2])))
        self.block8 = Block8(c, 1.0, activate=False, d=d)
        self.conv2d_7b = BasicConv2d(c, _w(1536, d), 1)
        self.avgpool_1a = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout(dropout)
        self.last_linear = nn.Linear(_w(1536, d), num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv2d_2b(self.conv2d_2a(self.conv2d_1a(x)))
        x = self.conv2d_4a(self.conv2d_3b(self.maxpool_3a(x)))
        if self.maxpool_5a is not None:
            x = self.maxpool_5a(x)
        x = self.mixed_5b(x)
        x = self.mixed_6a(self.repeat(x))
        x = self.mixed_7a(self.repeat_1(x))
        x = self.conv2d_7b(self.block8(self.repeat_2(x)))
        x = torch.flatten(self.avgpool_1a(x), 1)
        return self.last_linear(self.dropout(x))


def inception_resnet_v2(
    size: str = "teaching", num_classes: int | None = None, in_channels: int | None = None
) -> InceptionResNetV2:
    """Inception-ResNet-v2 at 3x299x299 (original) or quarter width, 2+2+2 blocks, 3x32x32.

    At teaching size the grids go 32 -> 16 (A blocks) -> 7 (B blocks) -> 3 (C blocks).
    """
    spec = resolve(size, num_classes, in_channels)
    if spec.original:
        return InceptionResNetV2(spec.num_classes, spec.in_channels)
    return InceptionResNetV2(
        spec.num_classes, spec.in_channels, width_divisor=4, repeats=(2, 2, 2), small_input=True
    )
