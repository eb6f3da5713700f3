"""LeNet-5.

Reference:
    Y. LeCun, L. Bottou, Y. Bengio and P. Haffner, 1998. "Gradient-based learning applied to
    document recognition". Proceedings of the IEEE, 86(11), 2278-2324.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from ._common import resolve

__all__ = ["LeNet5", "lenet5"]


class LeNet5(nn.Module):
    """LeNet-5 with the layer names of the paper (C1, S2, C3, S4, C5, F6, output).

    The default is the form taught today: ReLU and max pooling. ``classic=True`` gives tanh and
    average pooling, closer to the paper (which used scaled tanh, trainable sub-sampling and a
    sparse C3 connection table; here C3 sees all six maps and the output layer is a plain linear
    layer instead of Euclidean RBF units).

    With a 1x32x32 input (or 1x28x28 and ``padding=2`` on C1, the usual choice for MNIST) and
    ten classes it has 61,706 parameters:
    C1 156 + C3 2,416 + C5 48,120 + F6 10,164 + output 850.

    Args:
        num_classes: Number of output classes.
        in_channels: Number of input channels.
        c1_padding: Padding of C1; 0 for 32x32 input, 2 for 28x28.
        classic: Use tanh and average pooling instead of ReLU and max pooling.
    """

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 1,
        c1_padding: int = 0,
        classic: bool = False,
    ) -> None:
        super().__init__()

        def act() -> nn.Module:
            return nn.Tanh() if classic else nn.ReLU()

        def pool() -> nn.Module:
            return nn.AvgPool2d(2, stride=2) if classic else nn.MaxPool2d(2, stride=2)

        self.features = nn.Sequential(
            OrderedDict(
                [
                    ("c1", nn.Conv2d(in_channels, 6, kernel_size=5, padding=c1_padding)),
                    ("act1", act()),
                    ("s2", pool()),
                    ("c3", nn.Conv2d(6, 16, kernel_size=5)),
                    ("act3", act()),
                    ("s4", pool()),
                    # C5 is a 5x5 convolution over the 5x5 maps of S4, so it is 1x1 out.
                    ("c5", nn.Conv2d(16, 120, kernel_size=5)),
                    ("act5", act()),
                ]
            )
        )
        self.flatten = nn.Flatten(1)
        self.classifier = nn.Sequential(
            OrderedDict(
                [
                    ("f6", nn.Linear(120, 84)),
                    ("act6", act()),
                    ("output", nn.Linear(84, num_classes)),
                ]
            )
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        x = self.flatten(x)
        return self.classifier(x)


def lenet5(
    size: str = "teaching",
    num_classes: int | None = None,
    in_channels: int | None = None,
    *,
    classic: bool = False,
) -> LeNet5:
    """LeNet-5: 1x32x32 at original size, 1x28x28 (C1 padding 2) at teaching size.

    Both sizes have the same 61,706 parameters for ten classes.

    Args:
        size: ``"teaching"`` or ``"original"``.
        num_classes: Output classes; 10 by default.
        in_channels: Input channels; 1 by default.
        classic: Tanh and average pooling instead of ReLU and max pooling.
    """
    spec = resolve(
        size,
        num_classes,
        in_channels,
        original_classes=10,
        original_channels=1,
        teaching_channels=1,
    )
    return LeNet5(
        num_classes=spec.num_classes,
        in_channels=spec.in_channels,
        c1_padding=0 if spec.original else 2,
        classic=classic,
    )
