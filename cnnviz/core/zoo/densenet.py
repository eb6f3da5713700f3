"""DenseNet (DenseNet-BC).

Reference:
    G. Huang, Z. Liu, L. van der Maaten and K. Q. Weinberger, 2017. "Densely Connected
    Convolutional Networks". IEEE Conference on Computer Vision and Pattern Recognition (CVPR).

Every layer of a dense block sees the concatenation of all earlier feature maps of the block
and adds ``growth_rate`` new ones. Each layer is a bottleneck (BN-ReLU-1x1 conv to
``bn_size * growth_rate`` channels, BN-ReLU-3x3 conv to ``growth_rate``); a transition
(BN-ReLU-1x1 conv halving the channels, 2x2 average pool) sits between blocks.

At original size the networks are layer for layer torchvision's (``densenet121`` has 7,978,856
parameters). Here the concatenation happens in the block, in front of each layer, and the final
ReLU and pooling are modules (``relu``, ``avgpool``); neither changes a parameter name.
The teaching sizes keep the block configuration and use growth rate 8 with a CIFAR stem
(3x3 stride-1 convolution, no max pool) for 3x32x32 images.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch
from torch import nn

from ._common import resolve

__all__ = ["DenseNet", "densenet121", "densenet169", "densenet201"]


class _DenseLayer(nn.Module):
    """BN-ReLU-conv1x1-BN-ReLU-conv3x3 putting out ``growth_rate`` new channels."""

    def __init__(
        self, num_input_features: int, growth_rate: int, bn_size: int, drop_rate: float
    ) -> None:
        super().__init__()
        self.norm1 = nn.BatchNorm2d(num_input_features)
        self.relu1 = nn.ReLU()
        self.conv1 = nn.Conv2d(
            num_input_features, bn_size * growth_rate, kernel_size=1, stride=1, bias=False
        )
        self.norm2 = nn.BatchNorm2d(bn_size * growth_rate)
        self.relu2 = nn.ReLU()
        self.conv2 = nn.Conv2d(
            bn_size * growth_rate, growth_rate, kernel_size=3, stride=1, padding=1, bias=False
        )
        # None rather than nn.Identity, so that no empty node shows in the layer graph.
        self.dropout = nn.Dropout(drop_rate) if drop_rate > 0 else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(self.relu1(self.norm1(x)))
        out = self.conv2(self.relu2(self.norm2(out)))
        if self.dropout is not None:
            out = self.dropout(out)
        return out


class _DenseBlock(nn.ModuleDict):
    """``num_layers`` dense layers, each fed the concatenation of everything before it."""

    def __init__(
        self,
        num_layers: int,
        num_input_features: int,
        bn_size: int,
        growth_rate: int,
        drop_rate: float,
    ) -> None:
        super().__init__()
        for i in range(num_layers):
            layer = _DenseLayer(
                num_input_features + i * growth_rate, growth_rate, bn_size, drop_rate
            )
            self.add_module(f"denselayer{i + 1}", layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = [x]
        for layer in self.values():
            features.append(layer(torch.cat(features, 1)))
        return torch.cat(features, 1)


class _Transition(nn.Sequential):
    """BN-ReLU-conv1x1 (compression) and a 2x2 average pool between dense blocks."""

    def __init__(self, num_input_features: int, num_output_features: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(num_input_features)
        self.relu = nn.ReLU()
        self.conv = nn.Conv2d(num_input_features, num_output_features, 1, stride=1, bias=False)
        self.pool = nn.AvgPool2d(kernel_size=2, stride=2)


class DenseNet(nn.Module):
    """DenseNet-BC.

    Args:
        growth_rate: New channels per layer (k in the paper).
        block_config: Layers per dense block.
        num_init_features: Channels of the stem convolution.
        bn_size: Bottleneck width as a multiple of ``growth_rate``.
        drop_rate: Dropout after each dense layer.
        num_classes: Number of output classes.
        in_channels: Number of input channels.
        small_input: CIFAR stem (3x3 stride-1 convolution, no norm and pool) for 32x32 images.
    """

    def __init__(
        self,
        growth_rate: int = 32,
        block_config: Sequence[int] = (6, 12, 24, 16),
        num_init_features: int = 64,
        bn_size: int = 4,
        drop_rate: float = 0.0,
        num_classes: int = 1000,
        in_channels: int = 3,
        small_input: bool = False,
    ) -> None:
        super().__init__()
        stem: OrderedDict[str, nn.Module] = OrderedDict()
        if small_input:
            stem["conv0"] = nn.Conv2d(
                in_channels, num_init_features, kernel_size=3, stride=1, padding=1, bias=False
            )
        else:
            stem["conv0"] = nn.Conv2d(
                in_channels, num_init_features, kernel_size=7, stride=2, padding=3, bias=False
            )
            stem["norm0"] = nn.BatchNorm2d(num_init_features)
            stem["relu0"] = nn.ReLU()
            stem["pool0"] = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.features = nn.Sequential(stem)

        num_features = num_init_features
        for i, num_layers in enumerate(block_config):
            block = _DenseBlock(num_layers, num_features, bn_size, growth_rate, drop_rate)
            self.features.add_module(f"denseblock{i + 1}", block)
            num_features += num_layers * growth_rate
            if i != len(block_config) - 1:
                trans = _Transition(num_features, num_features // 2)
                self.features.add_module(f"transition{i + 1}", trans)
                num_features //= 2
        self.features.add_module("norm5", nn.BatchNorm2d(num_features))
        self.relu = nn.ReLU()
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.classifier = nn.Linear(num_features, num_classes)

        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.features(x))
        x = torch.flatten(self.avgpool(x), 1)
        return self.classifier(x)


def _densenet(
    block_config: Sequence[int],
    size: str,
    num_classes: int | None,
    in_channels: int | None,
) -> DenseNet:
    spec = resolve(size, num_classes, in_channels)
    if spec.original:
        return DenseNet(
            32, block_config, 64, num_classes=spec.num_classes, in_channels=spec.in_channels
        )
    return DenseNet(
        8,
        block_config,
        16,
        num_classes=spec.num_classes,
        in_channels=spec.in_channels,
        small_input=True,
    )


def densenet121(
    size: str = "teaching", num_classes: int | None = None, in_channels: int | None = None
) -> DenseNet:
    """DenseNet-121: blocks (6, 12, 24, 16), growth rate 32 (8 at teaching size)."""
    return _densenet((6, 12, 24, 16), size, num_classes, in_channels)


def densenet169(
    size: str = "teaching", num_classes: int | None = None, in_channels: int | None = None
) -> DenseNet:
    """DenseNet-169: blocks (6, 12, 32, 32), growth rate 32 (8 at teaching size)."""
    return _densenet((6, 12, 32, 32), size, num_classes, in_channels)


def densenet201(
    size: str = "teaching", num_classes: int | None = None, in_channels: int | None = None
) -> DenseNet:
    """DenseNet-201: blocks (6, 12, 48, 32), growth rate 32 (8 at teaching size)."""
    return _densenet((6, 12, 48, 32), size, num_classes, in_channels)
