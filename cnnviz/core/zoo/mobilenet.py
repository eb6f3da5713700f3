"""MobileNet v1.

Reference:
    A. G. Howard, M. Zhu, B. Chen, D. Kalenichenko, W. Wang, T. Weyand, M. Andreetto and
    H. Adam, 2017. "MobileNets: Efficient Convolutional Neural Networks for Mobile Vision
    Applications". arXiv:1704.04861.

A depthwise separable convolution splits a 3x3 convolution into a depthwise 3x3 (one filter
per channel, ``groups=C``) and a pointwise 1x1 that mixes the channels, each followed by batch
norm and ReLU: about 8-9 times fewer multiply-adds for the same output shape. The width
multiplier alpha thins every layer.

At width 1.0, 3x224x224 and 1000 classes the network has 4,231,976 parameters (the paper's
4.2M; batch norm scale and shift counted, running statistics not). The teaching size is
alpha = 0.5 for 3x32x32 with stride 1 in the stem and in layer 12 (the last downsampling
one), so the maps go 32 -> 16 -> 8 -> 4 and the last two layers still see a 4x4 map.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from ._common import init_kaiming, resolve

__all__ = ["ConvBNReLU", "DepthwiseSeparable", "MobileNetV1", "mobilenet_v1"]

# (output channels, stride) of the 13 depthwise separable layers of Table 1 of the paper.
BLOCKS: tuple[tuple[int, int], ...] = (
    (64, 1),
    (128, 2),
    (128, 1),
    (256, 2),
    (256, 1),
    (512, 2),
    (512, 1),
    (512, 1),
    (512, 1),
    (512, 1),
    (512, 1),
    (1024, 2),
    (1024, 1),
)


class ConvBNReLU(nn.Sequential):
    """A full 3x3 convolution, batch norm and ReLU: the stem.

    Args:
        in_channels: Input channels.
        out_channels: Output channels.
        stride: Stride of the convolution.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__(
            OrderedDict(
                [
                    ("conv", nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)),
                    ("bn", nn.BatchNorm2d(out_channels)),
                    ("relu", nn.ReLU()),
                ]
            )
        )


class DepthwiseSeparable(nn.Sequential):
    """Depthwise 3x3 (groups = channels) + BN + ReLU, then pointwise 1x1 + BN + ReLU.

    Args:
        in_channels: Input channels.
        out_channels: Output channels.
        stride: Stride of the depthwise convolution.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__(
            OrderedDict(
                [
                    (
                        "depthwise",
                        nn.Conv2d(
                            in_channels, in_channels, 3, stride, 1, groups=in_channels, bias=False
                        ),
                    ),
                    ("bn1", nn.BatchNorm2d(in_channels)),
                    ("relu1", nn.ReLU()),
                    ("pointwise", nn.Conv2d(in_channels, out_channels, 1, bias=False)),
                    ("bn2", nn.BatchNorm2d(out_channels)),
                    ("relu2", nn.ReLU()),
                ]
            )
        )


class MobileNetV1(nn.Module):
    """MobileNet v1: a 3x3 stem and 13 depthwise separable layers, average pool, linear.

    Args:
        num_classes: Number of output classes.
        in_channels: Number of input channels.
        width_mult: The width multiplier alpha.
        small_input: Stride-1 stem and stride 1 in layer 12, for 32x32 images.
        dropout: Dropout before the classifier; 0 leaves it out.
    """

    def __init__(
        self,
        num_classes: int = 1000,
        in_channels: int = 3,
        width_mult: float = 1.0,
        small_input: bool = False,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()

        def w(c: int) -> int:
            return max(8, int(c * width_mult))

        layers: OrderedDict[str, nn.Module] = OrderedDict()
        layers["stem"] = ConvBNReLU(in_channels, w(32), 1 if small_input else 2)
        channels = w(32)
        for i, (out, stride) in enumerate(BLOCKS, start=1):
            if small_input and i == 12:
                stride = 1
            layers[f"block{i}"] = DepthwiseSeparable(channels, w(out), stride)
            channels = w(out)
        self.features = nn.Sequential(layers)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.flatten = nn.Flatten(1)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else None
        self.fc = nn.Linear(channels, num_classes)
        init_kaiming(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.flatten(self.avgpool(self.features(x)))
        if self.dropout is not None:
            x = self.dropout(x)
        return self.fc(x)


def mobilenet_v1(
    size: str = "teaching",
    num_classes: int | None = None,
    in_channels: int | None = None,
    *,
    width_mult: float | None = None,
) -> MobileNetV1:
    """MobileNet v1: alpha 1.0 at 3x224x224 (original), alpha 0.5 at 3x32x32 (teaching).

    Args:
        size: ``"teaching"`` or ``"original"``.
        num_classes: Output classes; 1000 (original) or 10 (teaching) by default.
        in_channels: Input channels; 3 by default.
        width_mult: Override the width multiplier alpha.
    """
    spec = resolve(size, num_classes, in_channels)
    if width_mult is None:
        width_mult = 1.0 if spec.original else 0.5
    return MobileNetV1(
        spec.num_classes, spec.in_channels, width_mult, small_input=not spec.original
    )
