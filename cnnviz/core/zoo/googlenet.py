"""GoogLeNet (Inception v1).

Reference:
    C. Szegedy, W. Liu, Y. Jia, P. Sermanet, S. Reed, D. Anguelov, D. Erhan, V. Vanhoucke and
    A. Rabinovich, 2015. "Going Deeper with Convolutions". IEEE Conference on Computer Vision and
    Pattern Recognition (CVPR).

At original size this is layer for layer ``torchvision.models.googlenet(aux_logits=True)``,
including two departures from the paper that torchvision made: a batch norm after every
convolution (from Inception v2) and a 3x3 instead of a 5x5 convolution in the third branch of
every Inception module (pytorch/vision issue #906; kept so that torchvision's weights load).
torchvision's published 6,624,904 parameters exclude the two auxiliary classifiers
(3,188,968 and 3,191,016 more for 1000 classes: 13,004,888 in all).
"""

from __future__ import annotations

from collections import namedtuple

import torch
from torch import nn

from ._common import resolve

__all__ = ["BasicConv2d", "GoogLeNet", "GoogLeNetOutputs", "Inception", "InceptionAux", "googlenet"]

GoogLeNetOutputs = namedtuple("GoogLeNetOutputs", ["logits", "aux_logits2", "aux_logits1"])
"""What GoogLeNet returns in training mode with auxiliary classifiers.

``logits`` comes from the main head, ``aux_logits2`` from the classifier after inception4d and
``aux_logits1`` from the one after inception4a (the order torchvision uses). The paper weights
each auxiliary loss by 0.3: ``loss = ce(logits) + 0.3 * (ce(aux_logits1) + ce(aux_logits2))``.
"""

# (in, 1x1, 3x3 reduce, 3x3, "5x5" reduce, "5x5", pool proj) of Table 1 of the paper.
INCEPTION_CONFIGS: dict[str, tuple[int, int, int, int, int, int, int]] = {
    "inception3a": (192, 64, 96, 128, 16, 32, 32),
    "inception3b": (256, 128, 128, 192, 32, 96, 64),
    "inception4a": (480, 192, 96, 208, 16, 48, 64),
    "inception4b": (512, 160, 112, 224, 24, 64, 64),
    "inception4c": (512, 128, 128, 256, 24, 64, 64),
    "inception4d": (512, 112, 144, 288, 32, 64, 64),
    "inception4e": (528, 256, 160, 320, 32, 128, 128),
    "inception5a": (832, 256, 160, 320, 32, 128, 128),
    "inception5b": (832, 384, 192, 384, 48, 128, 128),
}


class BasicConv2d(nn.Module):
    """Convolution without bias, batch norm (eps 0.001) and ReLU.

    Args:
        in_channels: Input channels.
        out_channels: Output channels.
        **kwargs: Passed to ``nn.Conv2d`` (kernel_size, stride, padding).
    """

    def __init__(self, in_channels: int, out_channels: int, **kwargs: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, bias=False, **kwargs)
        self.bn = nn.BatchNorm2d(out_channels, eps=0.001)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn(self.conv(x)))


class Inception(nn.Module):
    """Inception module: four parallel branches concatenated along the channels.

    ``branch1`` is a 1x1 convolution; ``branch2`` a 1x1 reduction then a 3x3; ``branch3`` a 1x1
    reduction then a "5x5" (3x3 here, as in torchvision, or a true 5x5 with
    ``true_5x5=True``); ``branch4`` a 3x3 max pool then a 1x1 projection. The 1x1 reductions are
    what keep the module cheap.

    Args:
        in_channels: Input channels.
        ch1x1: Output of branch 1.
        ch3x3red: Reduction of branch 2.
        ch3x3: Output of branch 2.
        ch5x5red: Reduction of branch 3.
        ch5x5: Output of branch 3.
        pool_proj: Output of branch 4.
        true_5x5: Use a 5x5 convolution in branch 3, as in the paper.
    """

    def __init__(
        self,
        in_channels: int,
        ch1x1: int,
        ch3x3red: int,
        ch3x3: int,
        ch5x5red: int,
        ch5x5: int,
        pool_proj: int,
        true_5x5: bool = False,
    ) -> None:
        super().__init__()
        k = 5 if true_5x5 else 3
        self.branch1 = BasicConv2d(in_channels, ch1x1, kernel_size=1)
        self.branch2 = nn.Sequential(
            BasicConv2d(in_channels, ch3x3red, kernel_size=1),
            BasicConv2d(ch3x3red, ch3x3, kernel_size=3, padding=1),
        )
        self.branch3 = nn.Sequential(
            BasicConv2d(in_channels, ch5x5red, kernel_size=1),
            BasicConv2d(ch5x5red, ch5x5, kernel_size=k, padding=k // 2),
        )
        self.branch4 = nn.Sequential(
            nn.MaxPool2d(kernel_size=3, stride=1, padding=1, ceil_mode=True),
            BasicConv2d(in_channels, pool_proj, kernel_size=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outputs = [self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)]
        return torch.cat(outputs, 1)


class InceptionAux(nn.Module):
    """Auxiliary classifier: 4x4 average pool, 1x1 convolution, two linear layers.

    Args:
        in_channels: Input channels.
        num_classes: Number of output classes.
        conv_channels: Output of the 1x1 convolution (128 in the paper).
        hidden: Width of the hidden linear layer (1024 in the paper).
        dropout: Dropout probability (0.7 in the paper).
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        conv_channels: int = 128,
        hidden: int = 1024,
        dropout: float = 0.7,
    ) -> None:
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d((4, 4))
        self.conv = BasicConv2d(in_channels, conv_channels, kernel_size=1)
        self.flatten = nn.Flatten(1)
        self.fc1 = nn.Linear(conv_channels * 4 * 4, hidden)
        self.relu = nn.ReLU()
        self.dropout = nn.Dropout(p=dropout)
        self.fc2 = nn.Linear(hidden, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(self.avgpool(x))
        x = self.relu(self.fc1(self.flatten(x)))
        return self.fc2(self.dropout(x))


class GoogLeNet(nn.Module):
    """GoogLeNet: a stem, nine Inception modules, global average pooling, one linear layer.

    In training mode with ``aux_logits=True`` the forward pass returns
    ``GoogLeNetOutputs(logits, aux_logits2, aux_logits1)``, a namedtuple of three
    ``(N, num_classes)`` tensors; in eval mode, or with ``aux_logits=False``, it returns the
    ``(N, num_classes)`` logits alone, so the auxiliary classifiers cost nothing at inference.

    Args:
        num_classes: Number of output classes.
        in_channels: Number of input channels.
        aux_logits: Build the two auxiliary classifiers (``aux1``, ``aux2``).
        width_divisor: Divide every filter count by this (teaching sizes).
        small_input: Use a 3x3 stride-1 first convolution for 32x32 images instead of the
            7x7 stride-2 one for 224x224.
        true_5x5: 5x5 convolutions in the third branches, as in the paper.
        dropout: Dropout before the last linear layer.
        dropout_aux: Dropout in the auxiliary classifiers.
    """

    def __init__(
        self,
        num_classes: int = 1000,
        in_channels: int = 3,
        aux_logits: bool = True,
        width_divisor: int = 1,
        small_input: bool = False,
        true_5x5: bool = False,
        dropout: float = 0.2,
        dropout_aux: float = 0.7,
    ) -> None:
        super().__init__()
        self.aux_logits = aux_logits

        def w(c: int) -> int:
            return c // width_divisor

        if small_input:
            self.conv1 = BasicConv2d(in_channels, w(64), kernel_size=3, stride=1, padding=1)
        else:
            self.conv1 = BasicConv2d(in_channels, w(64), kernel_size=7, stride=2, padding=3)
        self.maxpool1 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.conv2 = BasicConv2d(w(64), w(64), kernel_size=1)
        self.conv3 = BasicConv2d(w(64), w(192), kernel_size=3, padding=1)
        self.maxpool2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)

        def inception(name: str) -> Inception:
            return Inception(*(w(c) for c in INCEPTION_CONFIGS[name]), true_5x5=true_5x5)

        self.inception3a = inception("inception3a")
        self.inception3b = inception("inception3b")
        self.maxpool3 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.inception4a = inception("inception4a")
        self.inception4b = inception("inception4b")
        self.inception4c = inception("inception4c")
        self.inception4d = inception("inception4d")
        self.inception4e = inception("inception4e")
        self.maxpool4 = nn.MaxPool2d(2, stride=2, ceil_mode=True)
        self.inception5a = inception("inception5a")
        self.inception5b = inception("inception5b")

        self.aux1: InceptionAux | None = None
        self.aux2: InceptionAux | None = None
        if aux_logits:
            aux = {"conv_channels": w(128), "hidden": w(1024), "dropout": dropout_aux}
            self.aux1 = InceptionAux(w(512), num_classes, **aux)
            self.aux2 = InceptionAux(w(528), num_classes, **aux)

        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout(p=dropout)
        self.fc = nn.Linear(w(1024), num_classes)

        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.trunc_normal_(m.weight, mean=0.0, std=0.01, a=-2, b=2)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor | GoogLeNetOutputs:
        x = self.maxpool1(self.conv1(x))
        x = self.maxpool2(self.conv3(self.conv2(x)))
        x = self.inception3b(self.inception3a(x))
        x = self.maxpool3(x)
        x = self.inception4a(x)
        # `self.training` is a plain bool, so torch.fx traces whichever branch the mode selects.
        with_aux = self.training and self.aux1 is not None and self.aux2 is not None
        aux1 = self.aux1(x) if with_aux else None
        x = self.inception4d(self.inception4c(self.inception4b(x)))
        aux2 = self.aux2(x) if with_aux else None
        x = self.maxpool4(self.inception4e(x))
        x = self.inception5b(self.inception5a(x))
        x = torch.flatten(self.avgpool(x), 1)
        logits = self.fc(self.dropout(x))
        if with_aux:
            return GoogLeNetOutputs(logits, aux2, aux1)
        return logits


def googlenet(
    size: str = "teaching",
    num_classes: int | None = None,
    in_channels: int | None = None,
    *,
    aux_logits: bool = True,
) -> GoogLeNet:
    """GoogLeNet at 3x224x224 (original) or at a quarter of the width for 3x32x32 (teaching).

    The teaching net keeps all nine Inception modules and both auxiliary classifiers; its
    stem is a 3x3 stride-1 convolution, so the maps go 32 -> 16 -> 8 -> 4 -> 2.
    """
    spec = resolve(size, num_classes, in_channels)
    if spec.original:
        return GoogLeNet(spec.num_classes, spec.in_channels, aux_logits=aux_logits)
    return GoogLeNet(
        spec.num_classes,
        spec.in_channels,
        aux_logits=aux_logits,
        width_divisor=4,
        small_input=True,
    )
