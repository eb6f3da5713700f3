"""VGG.

Reference:
    K. Simonyan and A. Zisserman, 2015. "Very Deep Convolutional Networks for Large-Scale Image
    Recognition". International Conference on Learning Representations (ICLR).

At original size every builder here is layer for layer its torchvision namesake (``vgg16`` has
138,357,544 parameters); the ``_bn`` variants add batch normalisation after each convolution,
which the paper did not have (S. Ioffe and C. Szegedy, 2015, came out the same year).
"""

from __future__ import annotations

import torch
from torch import nn

from ._common import init_kaiming, resolve

__all__ = [
    "VGG",
    "make_layers",
    "vgg11",
    "vgg11_bn",
    "vgg13",
    "vgg13_bn",
    "vgg16",
    "vgg16_bn",
    "vgg19",
    "vgg19_bn",
]

# Configurations A, B, D and E of Table 1 of the paper; "M" is a 2x2 max pool.
CONFIGS: dict[str, list[int | str]] = {
    "A": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "B": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "D": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "E": [
        64,
        64,
        "M",
        128,
        128,
        "M",
        256,
        256,
        256,
        256,
        "M",
        512,
        512,
        512,
        512,
        "M",
        512,
        512,
        512,
        512,
        "M",
    ],  # fmt: skip
}
_DEPTH_TO_CONFIG = {11: "A", 13: "B", 16: "D", 19: "E"}

# Teaching nets have a quarter of the filters: 16-32-64-128-128.
_TEACHING_WIDTH_DIVISOR = 4


def make_layers(
    config: list[int | str], batch_norm: bool = False, in_channels: int = 3, width_divisor: int = 1
) -> nn.Sequential:
    """The convolutional part of a VGG: 3x3 convolutions with ReLU, and 2x2 max pools.

    Args:
        config: Filters per convolution, ``"M"`` for a max pool.
        batch_norm: Put a batch norm between each convolution and its ReLU.
        in_channels: Channels of the input image.
        width_divisor: Divide every filter count by this (teaching sizes).

    Returns:
        A ``nn.Sequential`` indexed like torchvision's ``features``.
    """
    layers: list[nn.Module] = []
    channels = in_channels
    for v in config:
        if v == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            continue
        width = int(v) // width_divisor
        layers.append(nn.Conv2d(channels, width, kernel_size=3, padding=1))
        if batch_norm:
            layers.append(nn.BatchNorm2d(width))
        layers.append(nn.ReLU())
        channels = width
    return nn.Sequential(*layers)


class VGG(nn.Module):
    """VGG: a stack of 3x3 convolutions and max pools, then three fully connected layers.

    Args:
        features: The convolutional stack, usually from :func:`make_layers`.
        num_classes: Number of output classes.
        feature_channels: Channels that ``features`` puts out.
        pooled: Side of the adaptive average pool before the classifier (7 at 224x224).
        hidden: Width of the two hidden fully connected layers.
        dropout: Dropout probability after each hidden layer.
    """

    def __init__(
        self,
        features: nn.Module,
        num_classes: int = 1000,
        feature_channels: int = 512,
        pooled: int = 7,
        hidden: int = 4096,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        self.features = features
        self.avgpool = nn.AdaptiveAvgPool2d((pooled, pooled))
        self.classifier = nn.Sequential(
            nn.Linear(feature_channels * pooled * pooled, hidden),
            nn.ReLU(),
            nn.Dropout(p=dropout),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Dropout(p=dropout),
            nn.Linear(hidden, num_classes),
        )
        init_kaiming(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        x = self.avgpool(x)
        x = torch.flatten(x, 1)
        return self.classifier(x)


def _vgg(
    depth: int, batch_norm: bool, size: str, num_classes: int | None, in_channels: int | None
) -> VGG:
    spec = resolve(size, num_classes, in_channels)
    config = CONFIGS[_DEPTH_TO_CONFIG[depth]]
    if spec.original:
        features = make_layers(config, batch_norm, spec.in_channels)
        return VGG(features, num_classes=spec.num_classes)
    # At 32x32 the five pools leave a 1x1 map, so the classifier sees just the channels.
    features = make_layers(config, batch_norm, spec.in_channels, _TEACHING_WIDTH_DIVISOR)
    return VGG(
        features,
        num_classes=spec.num_classes,
        feature_channels=512 // _TEACHING_WIDTH_DIVISOR,
        pooled=1,
        hidden=256,
    )


def vgg11(
    size: str = "teaching", num_classes: int | None = None, in_channels: int | None = None
) -> VGG:
    """VGG-11 (configuration A)."""
    return _vgg(11, False, size, num_classes, in_channels)


def vgg11_bn(
    size: str = "teaching", num_classes: int | None = None, in_channels: int | None = None
) -> VGG:
    """VGG-11 (configuration A) with batch normalisation."""
    return _vgg(11, True, size, num_classes, in_channels)


def vgg13(
    size: str = "teaching", num_classes: int | None = None, in_channels: int | None = None
) -> VGG:
    """VGG-13 (configuration B)."""
    return _vgg(13, False, size, num_classes, in_channels)


def vgg13_bn(
    size: str = "teaching", num_classes: int | None = None, in_channels: int | None = None
) -> VGG:
    """VGG-13 (configuration B) with batch normalisation."""
    return _vgg(13, True, size, num_classes, in_channels)


def vgg16(
    size: str = "teaching", num_classes: int | None = None, in_channels: int | None = None
) -> VGG:
    """VGG-16 (configuration D)."""
    return _vgg(16, False, size, num_classes, in_channels)


def vgg16_bn(
    size: str = "teaching", num_classes: int | None = None, in_channels: int | None = None
) -> VGG:
    """VGG-16 (configuration D) with batch normalisation."""
    return _vgg(16, True, size, num_classes, in_channels)


def vgg19(
    size: str = "teaching", num_classes: int | None = None, in_channels: int | None = None
) -> VGG:
    """VGG-19 (configuration E)."""
    return _vgg(19, False, size, num_classes, in_channels)


def vgg19_bn(
    size: str = "teaching", num_classes: int | None = None, in_channels: int | None = None
) -> VGG:
    """VGG-19 (configuration E) with batch normalisation."""
    return _vgg(19, True, size, num_classes, in_channels)
