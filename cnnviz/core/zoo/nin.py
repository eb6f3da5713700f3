"""Network in Network.

Reference:
    M. Lin, Q. Chen and S. Yan, 2014. "Network In Network". International Conference on
    Learning Representations (ICLR).

An MLPconv block is a convolution followed by two 1x1 convolutions (the paper's "cascaded
cross channel parametric pooling", ``cccp``): a small multilayer perceptron slid over every
position. The last block puts out one map per class and global average pooling turns each map
into a logit, so there are no fully connected layers at all. As in the paper's Caffe models the
last block keeps its ReLU before the pooling.

The original size is the ImageNet NiN of the authors' Caffe model (96-256-384-1024 filters,
3x224x224). The teaching size is the paper's CIFAR-10 NiN (192-160-96, 192-192-192, 192-192-10)
at half width.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from ._common import init_kaiming, resolve

__all__ = ["MLPConv", "NiN", "nin"]


class MLPConv(nn.Sequential):
    """A convolution and two 1x1 convolutions, each followed by a ReLU.

    Args:
        in_channels: Input channels.
        channels: Output channels of (the convolution, the first 1x1, the second 1x1).
        kernel_size: Kernel of the first convolution.
        stride: Stride of the first convolution.
        padding: Padding of the first convolution.
    """

    def __init__(
        self,
        in_channels: int,
        channels: tuple[int, int, int],
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
    ) -> None:
        c0, c1, c2 = channels
        super().__init__(
            OrderedDict(
                [
                    ("conv", nn.Conv2d(in_channels, c0, kernel_size, stride, padding)),
                    ("relu0", nn.ReLU()),
                    ("cccp1", nn.Conv2d(c0, c1, kernel_size=1)),
                    ("relu1", nn.ReLU()),
                    ("cccp2", nn.Conv2d(c1, c2, kernel_size=1)),
                    ("relu2", nn.ReLU()),
                ]
            )
        )


class NiN(nn.Module):
    """Network in Network: MLPconv blocks, max pools, and global average pooling.

    Args:
        blocks: For each MLPconv block: (channels, kernel_size, stride, padding). The last
            block's last channel count is replaced by ``num_classes``.
        num_classes: Number of output classes.
        in_channels: Number of input channels.
        pool: (kernel, stride, padding) of the max pools between blocks.
        dropout: Dropout after the pools that follow the later blocks (0 to leave it out).
        dropout_after: Indices of the blocks whose pool is followed by dropout.
    """

    def __init__(
        self,
        blocks: list[tuple[tuple[int, int, int], int, int, int]],
        num_classes: int = 1000,
        in_channels: int = 3,
        pool: tuple[int, int, int] = (3, 2, 0),
        dropout: float = 0.5,
        dropout_after: tuple[int, ...] = (),
    ) -> None:
        super().__init__()
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        channels = in_channels
        for i, (widths, kernel, stride, padding) in enumerate(blocks, start=1):
            last = i == len(blocks)
            if last:
                widths = (widths[0], widths[1], num_classes)
            layers[f"mlpconv{i}"] = MLPConv(channels, widths, kernel, stride, padding)
            channels = widths[2]
            if not last:
                layers[f"pool{i}"] = nn.MaxPool2d(*pool)
                if dropout > 0 and (i - 1) in dropout_after:
                    layers[f"drop{i}"] = nn.Dropout(dropout)
        self.features = nn.Sequential(layers)
        self.gap = nn.AdaptiveAvgPool2d((1, 1))
        self.flatten = nn.Flatten(1)
        init_kaiming(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        x = self.gap(x)
        return self.flatten(x)


def nin(
    size: str = "teaching", num_classes: int | None = None, in_channels: int | None = None
) -> NiN:
    """Network in Network: ImageNet model at 3x224x224, half-width CIFAR model at 3x32x32."""
    spec = resolve(size, num_classes, in_channels)
    if spec.original:
        blocks = [
            ((96, 96, 96), 11, 4, 0),
            ((256, 256, 256), 5, 1, 2),
            ((384, 384, 384), 3, 1, 1),
            ((1024, 1024, 1000), 3, 1, 1),
        ]
        return NiN(blocks, spec.num_classes, spec.in_channels, pool=(3, 2, 0), dropout_after=(2,))
    blocks = [
        ((96, 80, 48), 5, 1, 2),
        ((96, 96, 96), 5, 1, 2),
        ((96, 96, 10), 3, 1, 1),
    ]
    return NiN(blocks, spec.num_classes, spec.in_channels, pool=(3, 2, 1), dropout_after=(0, 1))
