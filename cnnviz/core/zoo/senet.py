"""Squeeze-and-Excitation networks.

Reference:
    J. Hu, L. Shen and G. Sun, 2018. "Squeeze-and-Excitation Networks". IEEE Conference on
    Computer Vision and Pattern Recognition (CVPR).

An SE block squeezes each channel to one number (global average pooling), excites them through
a two-layer bottleneck (C -> C/r -> C, ReLU then sigmoid) and rescales the channels by the
result. The two fully connected layers are written as 1x1 convolutions with bias, which is the
same computation and keeps the tensors 4-D. The block sits on the residual branch, after the
last batch norm and before the addition (Figure 3 of the paper).

At original size SE-ResNet-50 has 28,088,024 parameters for 1000 classes (the paper reports
28.09M) and SE-ResNet-18 11,778,592. The teaching sizes are the teaching ResNets of
:mod:`.resnet` with reduction r=4, since r=16 would squeeze 16 channels into one.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ._common import resolve
from .resnet import (
    IMAGENET_PLANES,
    TEACHING_BOTTLENECK_PLANES,
    TEACHING_PLANES,
    BasicBlock,
    Bottleneck,
    ResNet,
)

__all__ = ["SEBasicBlock", "SEBlock", "SEBottleneck", "se_resnet18", "se_resnet50"]


class SEBlock(nn.Module):
    """Squeeze (global average pool) and excitation (FC-ReLU-FC-sigmoid), then rescale.

    Args:
        channels: Channels of the input and output.
        reduction: Ratio r of the bottleneck; the hidden layer has ``channels // r`` units.
    """

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        hidden = max(1, channels // reduction)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc1 = nn.Conv2d(channels, hidden, kernel_size=1)
        self.relu = nn.ReLU()
        self.fc2 = nn.Conv2d(hidden, channels, kernel_size=1)
        self.sigmoid = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.sigmoid(self.fc2(self.relu(self.fc1(self.avgpool(x)))))
        return x * scale


class SEBasicBlock(BasicBlock):
    """ResNet basic block with an SE block (``se``) on the residual branch.

    Args:
        inplanes: Input channels.
        planes: Output channels.
        stride: Stride of the first convolution.
        downsample: Shortcut projection when the shape changes, None for identity.
        groups: Must be 1.
        base_width: Must be 64.
        reduction: SE reduction ratio r.
    """

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        groups: int = 1,
        base_width: int = 64,
        reduction: int = 16,
    ) -> None:
        super().__init__(inplanes, planes, stride, downsample, groups, base_width)
        self.se = SEBlock(planes * self.expansion, reduction)

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        """The residual branch, rescaled channel-wise by the SE block."""
        return self.se(super().residual(x))


class SEBottleneck(Bottleneck):
    """ResNet bottleneck with an SE block (``se``) on the residual branch.

    Args:
        inplanes: Input channels.
        planes: Channels before the expansion; the block puts out ``4 * planes``.
        stride: Stride of the 3x3 convolution.
        downsample: Shortcut projection when the shape changes, None for identity.
        groups: Groups of the 3x3 convolution.
        base_width: Width per group.
        reduction: SE reduction ratio r.
    """

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        groups: int = 1,
        base_width: int = 64,
        reduction: int = 16,
    ) -> None:
        super().__init__(inplanes, planes, stride, downsample, groups, base_width)
        self.se = SEBlock(planes * self.expansion, reduction)

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        """The residual branch, rescaled channel-wise by the SE block."""
        return self.se(super().residual(x))


def _se_resnet(
    block: type[SEBasicBlock | SEBottleneck],
    layers: Sequence[int],
    size: str,
    num_classes: int | None,
    in_channels: int | None,
) -> ResNet:
    spec = resolve(size, num_classes, in_channels)
    if spec.original:
        return ResNet(
            block,
            layers,
            spec.num_classes,
            spec.in_channels,
            planes=IMAGENET_PLANES,
            block_kwargs={"reduction": 16},
        )
    planes = TEACHING_BOTTLENECK_PLANES if block.expansion > 1 else TEACHING_PLANES
    return ResNet(
        block,
        layers,
        spec.num_classes,
        spec.in_channels,
        planes=planes,
        small_input=True,
        block_kwargs={"reduction": 4},
    )


def se_resnet18(
    size: str = "teaching", num_classes: int | None = None, in_channels: int | None = None
) -> ResNet:
    """SE-ResNet-18: ResNet-18 with an SE block in every basic block."""
    return _se_resnet(SEBasicBlock, [2, 2, 2, 2], size, num_classes, in_channels)


def se_resnet50(
    size: str = "teaching", num_classes: int | None = None, in_channels: int | None = None
) -> ResNet:
    """SE-ResNet-50: ResNet-50 with an SE block in every bottleneck."""
    return _se_resnet(SEBottleneck, [3, 4, 6, 3], size, num_classes, in_channels)
