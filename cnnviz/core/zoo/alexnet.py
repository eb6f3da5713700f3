"""AlexNet.

Reference:
    A. Krizhevsky, I. Sutskever and G. E. Hinton, 2012. "ImageNet Classification with Deep
    Convolutional Neural Networks". Advances in Neural Information Processing Systems 25 (NIPS).

At original size :func:`alexnet` is layer for layer ``torchvision.models.alexnet`` (61,100,840
parameters), which follows the single-tower variant of A. Krizhevsky, 2014, "One weird trick for
parallelizing convolutional neural networks" (arXiv:1404.5997): 64-192-384-256-256 filters and
no local response normalisation. :func:`alexnet_lrn` is the network of the 2012 paper: 96-256-384-
384-256 filters, local response normalisation after the first two convolutions, and
convolutions 2, 4 and 5 split into two groups, the trace of the two GPUs it was trained on
(60,965,224 parameters).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ._common import resolve

__all__ = ["AlexNet", "AlexNetConfig", "alexnet", "alexnet_lrn"]


@dataclass(frozen=True)
class AlexNetConfig:
    """Shape of an AlexNet-like network.

    Attributes:
        channels: Filters of the five convolutions.
        conv1: (kernel, stride, padding) of the first convolution.
        conv2: (kernel, padding) of the second convolution.
        pool: (kernel, stride) of the three max pools.
        pooled: Side of the adaptive average pool before the classifier.
        hidden: Width of the two hidden fully connected layers.
        lrn: Local response normalisation after the first two convolutions.
        groups: Groups of convolutions 2, 4 and 5 (2 in the paper: one per GPU).
    """

    channels: tuple[int, int, int, int, int] = (64, 192, 384, 256, 256)
    conv1: tuple[int, int, int] = (11, 4, 2)
    conv2: tuple[int, int] = (5, 2)
    pool: tuple[int, int] = (3, 2)
    pooled: int = 6
    hidden: int = 4096
    lrn: bool = False
    groups: int = 1


TORCHVISION = AlexNetConfig()
PAPER = AlexNetConfig(channels=(96, 256, 384, 384, 256), conv1=(11, 4, 0), lrn=True, groups=2)
TEACHING = AlexNetConfig(
    channels=(48, 96, 144, 96, 96), conv1=(5, 1, 2), pooled=3, hidden=512, lrn=False
)
TEACHING_LRN = AlexNetConfig(
    channels=(48, 96, 144, 96, 96), conv1=(5, 1, 2), pooled=3, hidden=512, lrn=True, groups=2
)


def _lrn() -> nn.LocalResponseNorm:
    # The paper's constants: n=5, alpha=1e-4, beta=0.75, k=2.
    return nn.LocalResponseNorm(size=5, alpha=1e-4, beta=0.75, k=2.0)


class AlexNet(nn.Module):
    """AlexNet: five convolutions and three fully connected layers with dropout.

    Submodules are ``features.N``, ``avgpool`` and ``classifier.N`` as in torchvision.

    Args:
        config: Layer shapes; the default is torchvision's AlexNet.
        num_classes: Number of output classes.
        in_channels: Number of input channels.
        dropout: Dropout probability before the two hidden linear layers.
    """

    def __init__(
        self,
        config: AlexNetConfig = TORCHVISION,
        num_classes: int = 1000,
        in_channels: int = 3,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        c1, c2, c3, c4, c5 = config.channels
        k1, s1, p1 = config.conv1
        k2, p2 = config.conv2
        pk, ps = config.pool
        g = config.groups
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, c1, kernel_size=k1, stride=s1, padding=p1),
            nn.ReLU(),
        ]
        if config.lrn:
            layers.append(_lrn())
        layers += [
            nn.MaxPool2d(kernel_size=pk, stride=ps),
            nn.Conv2d(c1, c2, kernel_size=k2, padding=p2, groups=g),
            nn.ReLU(),
        ]
        if config.lrn:
            layers.append(_lrn())
        layers += [
            nn.MaxPool2d(kernel_size=pk, stride=ps),
            nn.Conv2d(c2, c3, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.Conv2d(c3, c4, kernel_size=3, padding=1, groups=g),
            nn.ReLU(),
            nn.Conv2d(c4, c5, kernel_size=3, padding=1, groups=g),
            nn.ReLU(),
            nn.MaxPool2d(kernel_size=pk, stride=ps),
        ]
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((config.pooled, config.pooled))
        self.classifier = nn.Sequential(
            nn.Dropout(p=dropout),
            nn.Linear(c5 * config.pooled * config.pooled, config.hidden),
            nn.ReLU(),
            nn.Dropout(p=dropout),
            nn.Linear(config.hidden, config.hidden),
            nn.ReLU(),
            nn.Linear(config.hidden, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        x = self.avgpool(x)
        x = torch.flatten(x, 1)
        return self.classifier(x)


def alexnet(
    size: str = "teaching", num_classes: int | None = None, in_channels: int | None = None
) -> AlexNet:
    """AlexNet as in torchvision (original, 3x224x224) or narrowed for 3x32x32 (teaching).

    The teaching size keeps the five convolutions, three max pools and three linear layers,
    with a 5x5 stride-1 first convolution (an 11x11 stride-4 one would leave nothing of a
    32x32 image) and fewer filters.
    """
    spec = resolve(size, num_classes, in_channels)
    config = TORCHVISION if spec.original else TEACHING
    return AlexNet(config, num_classes=spec.num_classes, in_channels=spec.in_channels)


def alexnet_lrn(
    size: str = "teaching", num_classes: int | None = None, in_channels: int | None = None
) -> AlexNet:
    """AlexNet as in the 2012 paper: LRN and two-group convolutions (original is 3x227x227).

    The paper speaks of 224x224 inputs, but its layer sizes (55x55 after the first
    convolution) only work out for 227x227 without padding, which is what is used here.
    """
    spec = resolve(size, num_classes, in_channels)
    config = PAPER if spec.original else TEACHING_LRN
    return AlexNet(config, num_classes=spec.num_classes, in_channels=spec.in_channels)
