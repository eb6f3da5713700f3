"""ZFNet.

Reference:
    M. D. Zeiler and R. Fergus, 2014. "Visualizing and Understanding Convolutional Networks".
    European Conference on Computer Vision (ECCV), LNCS 8689, 818-833.

ZFNet is AlexNet after looking at its filters: a 7x7 stride-2 first convolution instead of
11x11 stride 4 (fewer dead and aliased filters), a stride-2 second convolution, and 384-384-256
filters in layers 3-5. Its contrast normalisation across feature maps is written here as local
response normalisation. Layer sizes follow Figure 3 of the paper for a 3x224x224 input:
110 -> 55 -> 26 -> 13 -> 13 -> 13 -> 6.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from ._common import init_kaiming, resolve

__all__ = ["ZFNet", "zfnet"]


class ZFNet(nn.Module):
    """ZFNet: five convolutions and three fully connected layers.

    Args:
        channels: Filters of the five convolutions.
        hidden: Width of the two hidden fully connected layers.
        num_classes: Number of output classes.
        in_channels: Number of input channels.
        pooled: Side of the adaptive average pool before the classifier.
        dropout: Dropout probability before the hidden linear layers.
        conv1_stride: Stride of the first convolution (2 in the paper).
    """

    def __init__(
        self,
        channels: tuple[int, int, int, int, int] = (96, 256, 384, 384, 256),
        hidden: int = 4096,
        num_classes: int = 1000,
        in_channels: int = 3,
        pooled: int = 6,
        dropout: float = 0.5,
        conv1_stride: int = 2,
    ) -> None:
        super().__init__()
        c1, c2, c3, c4, c5 = channels
        self.features = nn.Sequential(
            OrderedDict(
                [
                    (
                        "conv1",
                        nn.Conv2d(in_channels, c1, kernel_size=7, stride=conv1_stride, padding=1),
                    ),
                    ("relu1", nn.ReLU()),
                    ("pool1", nn.MaxPool2d(kernel_size=3, stride=2, padding=1)),
                    ("norm1", nn.LocalResponseNorm(size=5, alpha=1e-4, beta=0.75, k=2.0)),
                    ("conv2", nn.Conv2d(c1, c2, kernel_size=5, stride=2)),
                    ("relu2", nn.ReLU()),
                    ("pool2", nn.MaxPool2d(kernel_size=3, stride=2, padding=1)),
                    ("norm2", nn.LocalResponseNorm(size=5, alpha=1e-4, beta=0.75, k=2.0)),
                    ("conv3", nn.Conv2d(c2, c3, kernel_size=3, padding=1)),
                    ("relu3", nn.ReLU()),
                    ("conv4", nn.Conv2d(c3, c4, kernel_size=3, padding=1)),
                    ("relu4", nn.ReLU()),
                    ("conv5", nn.Conv2d(c4, c5, kernel_size=3, padding=1)),
                    ("relu5", nn.ReLU()),
                    ("pool5", nn.MaxPool2d(kernel_size=3, stride=2)),
                ]
            )
        )
        self.avgpool = nn.AdaptiveAvgPool2d((pooled, pooled))
        self.classifier = nn.Sequential(
            OrderedDict(
                [
                    ("fc6", nn.Linear(c5 * pooled * pooled, hidden)),
                    ("relu6", nn.ReLU()),
                    ("drop6", nn.Dropout(p=dropout)),
                    ("fc7", nn.Linear(hidden, hidden)),
                    ("relu7", nn.ReLU()),
                    ("drop7", nn.Dropout(p=dropout)),
                    ("fc8", nn.Linear(hidden, num_classes)),
                ]
            )
        )
        init_kaiming(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        x = self.avgpool(x)
        x = torch.flatten(x, 1)
        return self.classifier(x)


def zfnet(
    size: str = "teaching", num_classes: int | None = None, in_channels: int | None = None
) -> ZFNet:
    """ZFNet at 3x224x224 (original, 62,357,608 parameters) or narrowed for 3x32x32 (teaching).

    At 32x32 the paper's strides would shrink the maps to nothing before the last pool, so the
    teaching net uses stride 1 in the first convolution (32 -> 28 -> 14 -> 5 -> 3 -> 1), keeps
    every layer and thins the filters.
    """
    spec = resolve(size, num_classes, in_channels)
    if spec.original:
        return ZFNet(num_classes=spec.num_classes, in_channels=spec.in_channels)
    return ZFNet(
        channels=(48, 96, 144, 144, 96),
        hidden=512,
        num_classes=spec.num_classes,
        in_channels=spec.in_channels,
        pooled=1,
        conv1_stride=1,
    )
