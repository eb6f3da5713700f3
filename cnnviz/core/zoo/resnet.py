"""ResNet, Wide ResNet and ResNeXt.

References:
    K. He, X. Zhang, S. Ren and J. Sun, 2016. "Deep Residual Learning for Image Recognition".
    IEEE Conference on Computer Vision and Pattern Recognition (CVPR).

    S. Zagoruyko and N. Komodakis, 2016. "Wide Residual Networks". British Machine Vision
    Conference (BMVC).

    S. Xie, R. Girshick, P. Dollar, Z. Tu and K. He, 2017. "Aggregated Residual Transformations
    for Deep Neural Networks". IEEE Conference on Computer Vision and Pattern Recognition (CVPR).

At original size the ImageNet networks are layer for layer their torchvision namesakes (module
names, shapes and parameter counts). Like torchvision (and unlike the paper) the stride of a
downsampling bottleneck sits on its 3x3 convolution ("ResNet v1.5"); this changes no shape.
The teaching sizes use the CIFAR stem of the paper (a 3x3 stride-1 convolution and no max
pool) and a quarter (basic blocks) or an eighth (bottlenecks) of the width, for 3x32x32 images.

``resnet20``, ``resnet32`` and ``resnet56`` are the CIFAR-10 networks of section 4.2 of He et
al.: three stages of 16, 32 and 64 filters, 6n+2 layers, and the parameter-free "option A"
shortcut (subsample by 2, pad the new channels with zeros), which gives the paper's 0.27M,
0.46M and 0.85M parameters. For them the original and teaching sizes are the same network.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ._common import resolve

__all__ = [
    "BasicBlock",
    "Bottleneck",
    "CifarResNet",
    "ResNet",
    "ZeroPadShortcut",
    "conv1x1",
    "conv3x3",
    "resnet18",
    "resnet20",
    "resnet32",
    "resnet34",
    "resnet50",
    "resnet56",
    "resnet101",
    "resnet152",
    "resnext50_32x4d",
    "resnext101_32x8d",
    "wide_resnet50_2",
    "wide_resnet101_2",
]

IMAGENET_PLANES = (64, 128, 256, 512)
TEACHING_PLANES = (16, 32, 64, 128)
# Bottlenecks expand by 4, so their teaching stages start narrower to stay under ~1M parameters.
TEACHING_BOTTLENECK_PLANES = (8, 16, 32, 64)


def conv3x3(in_planes: int, out_planes: int, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    """3x3 convolution with padding 1 and no bias (a batch norm follows)."""
    return nn.Conv2d(
        in_planes, out_planes, kernel_size=3, stride=stride, padding=1, groups=groups, bias=False
    )


def conv1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    """1x1 convolution without bias."""
    return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions and an identity (or projection) shortcut: ResNet-18/34.

    Args:
        inplanes: Input channels.
        planes: Output channels.
        stride: Stride of the first convolution.
        downsample: Shortcut projection when the shape changes, None for identity.
        groups: Must be 1.
        base_width: Must be 64.
    """

    expansion: int = 1

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        groups: int = 1,
        base_width: int = 64,
    ) -> None:
        super().__init__()
        if groups != 1 or base_width != 64:
            raise ValueError("BasicBlock only supports groups=1 and base_width=64")
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU()
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
        self.stride = stride

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        """The residual branch F(x), before the addition."""
        out = self.relu(self.bn1(self.conv1(x)))
        return self.bn2(self.conv2(out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.residual(x) + identity
        return self.relu(out)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (grouped for ResNeXt), 1x1 expand by 4, plus shortcut: ResNet-50+.

    The 3x3 convolution has ``int(planes * base_width / 64) * groups`` channels, so
    ``base_width=128`` gives Wide ResNet-50-2 and ``groups=32, base_width=4`` ResNeXt 32x4d.

    Args:
        inplanes: Input channels.
        planes: Channels before the expansion; the block puts out ``4 * planes``.
        stride: Stride of the 3x3 convolution.
        downsample: Shortcut projection when the shape changes, None for identity.
        groups: Groups of the 3x3 convolution (ResNeXt cardinality).
        base_width: Width per group.
    """

    expansion: int = 4

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        groups: int = 1,
        base_width: int = 64,
    ) -> None:
        super().__init__()
        width = int(planes * (base_width / 64.0)) * groups
        self.conv1 = conv1x1(inplanes, width)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = conv3x3(width, width, stride, groups)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = conv1x1(width, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU()
        self.downsample = downsample
        self.stride = stride

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        """The residual branch F(x), before the addition."""
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.bn3(self.conv3(out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.residual(x) + identity
        return self.relu(out)


class ResNet(nn.Module):
    """ResNet: a stem, four stages of residual blocks, global average pooling, a linear layer.

    Args:
        block: Block class, :class:`BasicBlock` or :class:`Bottleneck` (or a subclass).
        layers: Blocks per stage.
        num_classes: Number of output classes.
        in_channels: Number of input channels.
        groups: Groups of the bottleneck 3x3 convolutions (ResNeXt).
        width_per_group: Width per group of the bottleneck 3x3 convolutions.
        planes: Channels of each stage before expansion.
        small_input: CIFAR stem (3x3 stride-1 convolution, no max pool) for 32x32 images.
        zero_init_residual: Start the last batch norm of each block at zero, so that every
            block starts as the identity.
        block_kwargs: Extra keyword arguments for every block (the SE reduction, for example).
    """

    def __init__(
        self,
        block: type[BasicBlock | Bottleneck],
        layers: Sequence[int],
        num_classes: int = 1000,
        in_channels: int = 3,
        groups: int = 1,
        width_per_group: int = 64,
        planes: Sequence[int] = IMAGENET_PLANES,
        small_input: bool = False,
        zero_init_residual: bool = False,
        block_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self._block_kwargs = dict(block_kwargs or {})
        if len(layers) != len(planes):
            raise ValueError(f"{len(layers)} stages of blocks but {len(planes)} widths")
        self.groups = groups
        self.base_width = width_per_group
        self.inplanes = planes[0]
        if small_input:
            self.conv1 = nn.Conv2d(
                in_channels, self.inplanes, kernel_size=3, stride=1, padding=1, bias=False
            )
        else:
            self.conv1 = nn.Conv2d(
                in_channels, self.inplanes, kernel_size=7, stride=2, padding=3, bias=False
            )
        self.bn1 = nn.BatchNorm2d(self.inplanes)
        self.relu = nn.ReLU()
        # The CIFAR stem has no max pool; None rather than nn.Identity keeps the graph clean.
        self.maxpool = None if small_input else nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        for i, (width, blocks) in enumerate(zip(planes, layers, strict=True), start=1):
            stride = 1 if i == 1 else 2
            self.add_module(f"layer{i}", self._make_layer(block, width, blocks, stride))
        self.num_stages = len(layers)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(planes[-1] * block.expansion, num_classes)

        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if zero_init_residual:
            for m in self.modules():
                if isinstance(m, Bottleneck):
                    nn.init.zeros_(m.bn3.weight)
                elif isinstance(m, BasicBlock):
                    nn.init.zeros_(m.bn2.weight)

    def _make_layer(
        self, block: type[BasicBlock | Bottleneck], planes: int, blocks: int, stride: int
    ) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                conv1x1(self.inplanes, planes * block.expansion, stride),
                nn.BatchNorm2d(planes * block.expansion),
            )
        extra = self._block_kwargs
        layers = [
            block(self.inplanes, planes, stride, downsample, self.groups, self.base_width, **extra)
        ]
        self.inplanes = planes * block.expansion
        for _ in range(1, blocks):
            layers.append(
                block(
                    self.inplanes, planes, groups=self.groups, base_width=self.base_width, **extra
                )
            )
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        if self.maxpool is not None:
            x = self.maxpool(x)
        for i in range(1, self.num_stages + 1):
            x = getattr(self, f"layer{i}")(x)
        x = torch.flatten(self.avgpool(x), 1)
        return self.fc(x)


def _resnet(
    block: type[BasicBlock | Bottleneck],
    layers: Sequence[int],
    size: str,
    num_classes: int | None,
    in_channels: int | None,
    groups: int = 1,
    width_per_group: int = 64,
    teaching_groups: int | None = None,
    teaching_width_per_group: int | None = None,
) -> ResNet:
    spec = resolve(size, num_classes, in_channels)
    if spec.original:
        return ResNet(block, layers, spec.num_classes, spec.in_channels, groups, width_per_group)
    return ResNet(
        block,
        layers,
        spec.num_classes,
        spec.in_channels,
        groups=teaching_groups or groups,
        width_per_group=teaching_width_per_group or width_per_group,
        planes=TEACHING_BOTTLENECK_PLANES if block.expansion > 1 else TEACHING_PLANES,
        small_input=True,
    )


def resnet18(
    size: str = "teaching", num_classes: int | None = None, in_channels: int | None = None
) -> ResNet:
    """ResNet-18: basic blocks [2, 2, 2, 2]."""
    return _resnet(BasicBlock, [2, 2, 2, 2], size, num_classes, in_channels)


def resnet34(
    size: str = "teaching", num_classes: int | None = None, in_channels: int | None = None
) -> ResNet:
    """ResNet-34: basic blocks [3, 4, 6, 3]."""
    return _resnet(BasicBlock, [3, 4, 6, 3], size, num_classes, in_channels)


def resnet50(
    size: str = "teaching", num_classes: int | None = None, in_channels: int | None = None
) -> ResNet:
    """ResNet-50: bottlenecks [3, 4, 6, 3]."""
    return _resnet(Bottleneck, [3, 4, 6, 3], size, num_classes, in_channels)


def resnet101(
    size: str = "teaching", num_classes: int | None = None, in_channels: int | None = None
) -> ResNet:
    """ResNet-101: bottlenecks [3, 4, 23, 3]."""
    return _resnet(Bottleneck, [3, 4, 23, 3], size, num_classes, in_channels)


def resnet152(
    size: str = "teaching", num_classes: int | None = None, in_channels: int | None = None
) -> ResNet:
    """ResNet-152: bottlenecks [3, 8, 36, 3]."""
    return _resnet(Bottleneck, [3, 8, 36, 3], size, num_classes, in_channels)


def wide_resnet50_2(
    size: str = "teaching", num_classes: int | None = None, in_channels: int | None = None
) -> ResNet:
    """Wide ResNet-50-2: ResNet-50 with twice the channels inside every bottleneck."""
    return _resnet(Bottleneck, [3, 4, 6, 3], size, num_classes, in_channels, width_per_group=128)


def wide_resnet101_2(
    size: str = "teaching", num_classes: int | None = None, in_channels: int | None = None
) -> ResNet:
    """Wide ResNet-101-2: ResNet-101 with twice the channels inside every bottleneck."""
    return _resnet(Bottleneck, [3, 4, 23, 3], size, num_classes, in_channels, width_per_group=128)


def resnext50_32x4d(
    size: str = "teaching", num_classes: int | None = None, in_channels: int | None = None
) -> ResNet:
    """ResNeXt-50 32x4d: 32 groups of 4 channels in the first stage's 3x3 convolutions.

    At teaching size (an eighth of the width) 32 groups would leave less than one channel per
    group; the teaching net uses 4 groups of 4 channels instead (4x32d in torchvision's
    terms), the same total width relative to the stage.
    """
    return _resnet(
        Bottleneck,
        [3, 4, 6, 3],
        size,
        num_classes,
        in_channels,
        groups=32,
        width_per_group=4,
        teaching_groups=4,
        teaching_width_per_group=32,
    )


def resnext101_32x8d(
    size: str = "teaching", num_classes: int | None = None, in_channels: int | None = None
) -> ResNet:
    """ResNeXt-101 32x8d; the teaching net is 4x32d, like the teaching ResNeXt-50, to stay light."""
    return _resnet(
        Bottleneck,
        [3, 4, 23, 3],
        size,
        num_classes,
        in_channels,
        groups=32,
        width_per_group=8,
        teaching_groups=4,
        teaching_width_per_group=32,
    )


class ZeroPadShortcut(nn.Module):
    """Option A shortcut of He et al.: subsample by the stride, pad new channels with zeros.

    It has no parameters. Subsampling is a 1x1 max pool with the stride (the same as taking
    every other pixel), and the extra channels are zeros appended after the input's.

    Args:
        in_planes: Input channels.
        out_planes: Output channels (at least ``in_planes``).
        stride: Subsampling factor.
    """

    def __init__(self, in_planes: int, out_planes: int, stride: int) -> None:
        super().__init__()
        if out_planes < in_planes:
            raise ValueError("option A can only add channels")
        self.extra_channels = out_planes - in_planes
        self.subsample = nn.MaxPool2d(kernel_size=1, stride=stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.subsample(x)
        return F.pad(x, (0, 0, 0, 0, 0, self.extra_channels))


class CifarResNet(nn.Module):
    """The CIFAR-10 ResNet of He et al. section 4.2: 6n+2 layers, 16-32-64 filters.

    Args:
        depth: 6n+2 (20, 32, 44, 56, 110).
        num_classes: Number of output classes.
        in_channels: Number of input channels.
        shortcut: ``"A"`` for the parameter-free zero-padding shortcut of the paper, ``"B"``
            for 1x1 convolution projections where the shape changes.
    """

    def __init__(
        self, depth: int, num_classes: int = 10, in_channels: int = 3, shortcut: str = "A"
    ) -> None:
        super().__init__()
        if (depth - 2) % 6 != 0:
            raise ValueError(f"depth must be 6n+2, got {depth}")
        if shortcut not in ("A", "B"):
            raise ValueError(f"shortcut must be 'A' or 'B', got {shortcut!r}")
        n = (depth - 2) // 6
        self.conv1 = conv3x3(in_channels, 16)
        self.bn1 = nn.BatchNorm2d(16)
        self.relu = nn.ReLU()
        inplanes = 16
        for i, planes in enumerate((16, 32, 64), start=1):
            stride = 1 if i == 1 else 2
            blocks = []
            for j in range(n):
                downsample: nn.Module | None = None
                if j == 0 and (stride != 1 or inplanes != planes):
                    if shortcut == "A":
                        downsample = ZeroPadShortcut(inplanes, planes, stride)
                    else:
                        downsample = nn.Sequential(
                            conv1x1(inplanes, planes, stride), nn.BatchNorm2d(planes)
                        )
                blocks.append(BasicBlock(inplanes, planes, stride if j == 0 else 1, downsample))
                inplanes = planes
            self.add_module(f"layer{i}", nn.Sequential(*blocks))
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


def _cifar_resnet(
    depth: int, size: str, num_classes: int | None, in_channels: int | None
) -> CifarResNet:
    spec = resolve(size, num_classes, in_channels, original_classes=10)
    return CifarResNet(depth, spec.num_classes, spec.in_channels)


def resnet20(
    size: str = "teaching", num_classes: int | None = None, in_channels: int | None = None
) -> CifarResNet:
    """CIFAR ResNet-20 (n=3, 0.27M parameters); the same net at both sizes."""
    return _cifar_resnet(20, size, num_classes, in_channels)


def resnet32(
    size: str = "teaching", num_classes: int | None = None, in_channels: int | None = None
) -> CifarResNet:
    """CIFAR ResNet-32 (n=5, 0.46M parameters); the same net at both sizes."""
    return _cifar_resnet(32, size, num_classes, in_channels)


def resnet56(
    size: str = "teaching", num_classes: int | None = None, in_channels: int | None = None
) -> CifarResNet:
    """CIFAR ResNet-56 (n=9, 0.85M parameters); the same net at both sizes."""
    return _cifar_resnet(56, size, num_classes, in_channels)
