"""Small networks that show off three kinds of convolution: dilated, grouped and transposed.

References:
    F. Yu and V. Koltun, 2016. "Multi-Scale Context Aggregation by Dilated Convolutions".
    International Conference on Learning Representations (ICLR).

    A. Krizhevsky, I. Sutskever and G. E. Hinton, 2012. "ImageNet Classification with Deep
    Convolutional Neural Networks". NIPS (grouped convolutions, one group per GPU); and
    S. Xie, R. Girshick, P. Dollar, Z. Tu and K. He, 2017. "Aggregated Residual Transformations
    for Deep Neural Networks". CVPR (groups as "cardinality").

    V. Dumoulin and F. Visin, 2016. "A guide to convolution arithmetic for deep learning".
    arXiv:1603.07285 (transposed convolutions); H. Noh, S. Hong and B. Han, 2015. "Learning
    Deconvolution Network for Semantic Segmentation". ICCV (an encoder-decoder built on them).

``dilated_context`` at original size is the basic context module of Yu and Koltun (Table 1):
seven 3x3 convolutions with dilations 1, 1, 2, 4, 8, 16, 1 and a 1x1 convolution, on C=21 class
score maps (PASCAL VOC) of 64x64; its receptive field grows to 67x67 with no pooling at all.
The grouped and transposed networks are teaching networks with no paper-sized twin: their
original size is the same network as their teaching size.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch
from torch import nn

from ._common import init_kaiming, resolve

__all__ = [
    "ContextModule",
    "DilatedContextNet",
    "GroupedBlock",
    "GroupedConvNet",
    "TransposedConvNet",
    "dilated_context",
    "grouped_convnet",
    "transposed_convnet",
]

CONTEXT_DILATIONS: tuple[int, ...] = (1, 1, 2, 4, 8, 16, 1)


class ContextModule(nn.Sequential):
    """3x3 convolutions with growing dilation (each with a ReLU), then a 1x1 convolution.

    Padding equals the dilation, so every layer keeps the spatial size.

    Args:
        in_channels: Input channels.
        channels: Channels of every layer (C in the paper).
        dilations: Dilation of each 3x3 layer.
        out_channels: Output channels of the final 1x1 convolution (default ``channels``).
    """

    def __init__(
        self,
        in_channels: int,
        channels: int,
        dilations: Sequence[int] = CONTEXT_DILATIONS,
        out_channels: int | None = None,
    ) -> None:
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        c = in_channels
        for i, d in enumerate(dilations, start=1):
            layers[f"conv{i}"] = nn.Conv2d(c, channels, 3, padding=d, dilation=d)
            layers[f"relu{i}"] = nn.ReLU()
            c = channels
        layers[f"conv{len(dilations) + 1}"] = nn.Conv2d(c, out_channels or channels, 1)
        super().__init__(layers)


class DilatedContextNet(nn.Module):
    """Optional small front end, a context module, per-pixel class logits at full resolution.

    Args:
        num_classes: Classes per pixel.
        in_channels: Input channels.
        frontend_channels: Channels of the two 3x3 front-end convolutions; 0 for none (the
            input is already a score map, as in the paper).
        context_channels: Channels of the context module.
        dilations: Dilations of the context module.
    """

    def __init__(
        self,
        num_classes: int = 21,
        in_channels: int = 21,
        frontend_channels: int = 0,
        context_channels: int = 21,
        dilations: Sequence[int] = CONTEXT_DILATIONS,
    ) -> None:
        super().__init__()
        self.frontend: nn.Sequential | None = None
        c = in_channels
        if frontend_channels:
            self.frontend = nn.Sequential(
                OrderedDict(
                    [
                        ("conv1", nn.Conv2d(in_channels, frontend_channels, 3, padding=1)),
                        ("relu1", nn.ReLU()),
                        ("conv2", nn.Conv2d(frontend_channels, frontend_channels, 3, padding=1)),
                        ("relu2", nn.ReLU()),
                    ]
                )
            )
            c = frontend_channels
        self.context = ContextModule(c, context_channels, dilations, out_channels=num_classes)
        init_kaiming(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.frontend is not None:
            x = self.frontend(x)
        return self.context(x)


def dilated_context(
    size: str = "teaching", num_classes: int | None = None, in_channels: int | None = None
) -> DilatedContextNet:
    """Dilated convolutions for dense prediction.

    Original: the basic context module of Yu and Koltun on 21x64x64 score maps (28,392
    parameters). Teaching: two 3x3 convolutions on a 3x32x32 image, then a 32-channel context
    module with dilations 1, 1, 2, 4, 8, 1 (receptive field 39x39, more than the image) and
    per-pixel logits for 10 classes at 32x32.
    """
    spec = resolve(size, num_classes, in_channels, original_classes=21, original_channels=21)
    if spec.original:
        return DilatedContextNet(spec.num_classes, spec.in_channels, 0, 21, CONTEXT_DILATIONS)
    return DilatedContextNet(spec.num_classes, spec.in_channels, 32, 32, (1, 1, 2, 4, 8, 1))


class GroupedBlock(nn.Sequential):
    """Grouped 3x3 convolution + BN + ReLU, then a 1x1 convolution + BN + ReLU.

    A 3x3 convolution in ``groups`` groups has ``groups`` times fewer weights, but no channel
    sees another group; the 1x1 convolution mixes them again.

    Args:
        in_channels: Input channels (divisible by ``groups``).
        out_channels: Output channels (divisible by ``groups``).
        groups: Number of groups of the 3x3 convolution.
    """

    def __init__(self, in_channels: int, out_channels: int, groups: int) -> None:
        super().__init__(
            OrderedDict(
                [
                    (
                        "grouped",
                        nn.Conv2d(
                            in_channels, out_channels, 3, padding=1, groups=groups, bias=False
                        ),
                    ),
                    ("bn1", nn.BatchNorm2d(out_channels)),
                    ("relu1", nn.ReLU()),
                    ("mix", nn.Conv2d(out_channels, out_channels, 1, bias=False)),
                    ("bn2", nn.BatchNorm2d(out_channels)),
                    ("relu2", nn.ReLU()),
                ]
            )
        )


class GroupedConvNet(nn.Module):
    """A classifier of grouped blocks and max pools.

    Args:
        num_classes: Number of output classes.
        in_channels: Input channels.
        widths: Channels of the stem and of each stage.
        groups: Groups of the 3x3 convolutions.
    """

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 3,
        widths: Sequence[int] = (32, 64, 128, 256),
        groups: int = 8,
    ) -> None:
        super().__init__()
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        layers["stem"] = nn.Conv2d(in_channels, widths[0], 3, padding=1, bias=False)
        layers["bn0"] = nn.BatchNorm2d(widths[0])
        layers["relu0"] = nn.ReLU()
        for i in range(1, len(widths)):
            layers[f"block{i}"] = GroupedBlock(widths[i - 1], widths[i], groups)
            layers[f"pool{i}"] = nn.MaxPool2d(2, 2)
        self.features = nn.Sequential(layers)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.flatten = nn.Flatten(1)
        self.fc = nn.Linear(widths[-1], num_classes)
        init_kaiming(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.flatten(self.avgpool(self.features(x))))


def grouped_convnet(
    size: str = "teaching", num_classes: int | None = None, in_channels: int | None = None
) -> GroupedConvNet:
    """Grouped convolutions (8 groups) for 3x32x32; the same network at both sizes."""
    spec = resolve(size, num_classes, in_channels, original_classes=10)
    return GroupedConvNet(spec.num_classes, spec.in_channels)


def _down(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        OrderedDict(
            [
                ("conv", nn.Conv2d(in_channels, out_channels, 3, 2, 1, bias=False)),
                ("bn", nn.BatchNorm2d(out_channels)),
                ("relu", nn.ReLU()),
            ]
        )
    )


def _up(in_channels: int, out_channels: int) -> nn.Sequential:
    # kernel 4, stride 2, padding 1: exactly doubles the size, and 4 is divisible by the
    # stride, which avoids the checkerboard pattern of uneven overlap.
    return nn.Sequential(
        OrderedDict(
            [
                ("deconv", nn.ConvTranspose2d(in_channels, out_channels, 4, 2, 1, bias=False)),
                ("bn", nn.BatchNorm2d(out_channels)),
                ("relu", nn.ReLU()),
            ]
        )
    )


class TransposedConvNet(nn.Module):
    """Encoder of stride-2 convolutions, decoder of stride-2 transposed convolutions.

    Each ``down`` halves the size and each ``up`` doubles it back, so the per-pixel logits have
    the input's height and width (divisible by ``2 ** len(widths)``).

    Args:
        num_classes: Classes per pixel.
        in_channels: Input channels.
        widths: Channels after each downsampling step.
    """

    def __init__(
        self, num_classes: int = 10, in_channels: int = 3, widths: Sequence[int] = (32, 64, 128)
    ) -> None:
        super().__init__()
        enc: OrderedDict[str, nn.Module] = OrderedDict()
        c = in_channels
        for i, w in enumerate(widths, start=1):
            enc[f"down{i}"] = _down(c, w)
            c = w
        self.encoder = nn.Sequential(enc)
        dec: OrderedDict[str, nn.Module] = OrderedDict()
        outs = list(widths[-2::-1]) + [widths[0]]
        for i, w in enumerate(outs, start=1):
            dec[f"up{i}"] = _up(c, w)
            c = w
        self.decoder = nn.Sequential(dec)
        self.classifier = nn.Conv2d(c, num_classes, kernel_size=1)
        init_kaiming(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.decoder(self.encoder(x)))


def transposed_convnet(
    size: str = "teaching", num_classes: int | None = None, in_channels: int | None = None
) -> TransposedConvNet:
    """Transposed-convolution encoder-decoder for 3x32x32; the same network at both sizes."""
    spec = resolve(size, num_classes, in_channels, original_classes=10)
    return TransposedConvNet(spec.num_classes, spec.in_channels)
