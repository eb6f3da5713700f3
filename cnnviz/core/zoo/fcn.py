"""Fully convolutional networks for semantic segmentation (FCN-32s, FCN-16s, FCN-8s).

Reference:
    J. Long, E. Shelhamer and T. Darrell, 2015. "Fully Convolutional Networks for Semantic
    Segmentation". IEEE Conference on Computer Vision and Pattern Recognition (CVPR).

VGG-16's fully connected layers become convolutions (``fc6`` a 7x7 one, ``fc7`` a 1x1), a 1x1
``score_fr`` gives coarse class scores at 1/32 of the input, and transposed convolutions
(initialised to bilinear interpolation, no bias) bring them back to the input size. FCN-16s
and FCN-8s add the scores of ``pool4`` and ``pool3`` (through 1x1 ``score_pool4`` and
``score_pool3``) before upsampling further: finer detail from earlier layers.

At original size the layers, kernel sizes and parameter counts are the paper's Caffe models
for PASCAL VOC (21 classes): 136,152,917 parameters for FCN-32s (of which 1,806,336 in its
64x64 upsampling kernel), 134,815,994 for FCN-16s and 134,489,759 for FCN-8s. One thing is
deliberately different: the paper pads ``conv1_1`` by 100 and crops the upsampled maps to
handle any input size; here every convolution is
size-preserving ("same" padding, ``fc6`` padded by 3) and each transposed convolution
upsamples exactly by its stride, so for inputs whose sides divide by 32 no cropping is needed
and the output has the input's size. No parameter changes. torchvision's ``fcn_resnet50`` is a
different (ResNet, dilated) design and not a twin.

The teaching size has an eighth of the VGG-16 filters, a 3x3 ``fc6`` of 128 channels, and
takes 3x32x32 images to 10x32x32 logits.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from ._common import init_kaiming, resolve

__all__ = ["FCN", "bilinear_kernel", "fcn8s", "fcn16s", "fcn32s"]

# Convolutions per VGG-16 block and their filters.
VGG16_BLOCKS: tuple[tuple[int, int], ...] = ((2, 64), (2, 128), (3, 256), (3, 512), (3, 512))


def bilinear_kernel(
    channels: int, kernel_size: int, device: torch.device | None = None
) -> torch.Tensor:
    """Weights of a transposed convolution that upsamples each channel bilinearly.

    Args:
        channels: Input and output channels; channel i only feeds channel i.
        kernel_size: Side of the kernel (twice the stride).
        device: Where to create the tensor.

    Returns:
        A ``(channels, channels, kernel_size, kernel_size)`` tensor.
    """
    factor = (kernel_size + 1) // 2
    center = factor - 1 if kernel_size % 2 == 1 else factor - 0.5
    og = torch.arange(kernel_size, dtype=torch.float32, device=device)
    filt1d = 1 - (og - center).abs() / factor
    filt = filt1d[:, None] * filt1d[None, :]
    weight = torch.zeros(channels, channels, kernel_size, kernel_size, device=device)
    idx = torch.arange(channels, device=device)
    weight[idx, idx] = filt
    return weight


def _upsample(channels: int, factor: int) -> nn.ConvTranspose2d:
    # kernel 2f, stride f, padding f/2: the output is exactly f times the input.
    return nn.ConvTranspose2d(
        channels, channels, kernel_size=2 * factor, stride=factor, padding=factor // 2, bias=False
    )


def _vgg_block(index: int, in_channels: int, convs: int, width: int) -> nn.Sequential:
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    c = in_channels
    for j in range(1, convs + 1):
        layers[f"conv{index}_{j}"] = nn.Conv2d(c, width, kernel_size=3, padding=1)
        layers[f"relu{index}_{j}"] = nn.ReLU()
        c = width
    layers[f"pool{index}"] = nn.MaxPool2d(kernel_size=2, stride=2, ceil_mode=True)
    return nn.Sequential(layers)


class FCN(nn.Module):
    """FCN with a VGG-16-shaped backbone; ``variant`` picks the 32s, 16s or 8s head.

    Args:
        variant: ``"32s"``, ``"16s"`` or ``"8s"``: the stride of the last prediction.
        num_classes: Classes per pixel (21 for PASCAL VOC: 20 and background).
        in_channels: Input channels.
        width_divisor: Divide the backbone filters by this (teaching sizes).
        fc_channels: Channels of ``fc6`` and ``fc7`` (4096 in the paper).
        fc6_kernel: Kernel of ``fc6`` (7 in the paper).
        dropout: Dropout after ``fc6`` and ``fc7``.
    """

    def __init__(
        self,
        variant: str = "8s",
        num_classes: int = 21,
        in_channels: int = 3,
        width_divisor: int = 1,
        fc_channels: int = 4096,
        fc6_kernel: int = 7,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        if variant not in ("32s", "16s", "8s"):
            raise ValueError(f"variant must be '32s', '16s' or '8s', got {variant!r}")
        self.variant = variant
        c = in_channels
        widths = []
        for i, (convs, width) in enumerate(VGG16_BLOCKS, start=1):
            w = width // width_divisor
            self.add_module(f"block{i}", _vgg_block(i, c, convs, w))
            widths.append(w)
            c = w
        self.fc6 = nn.Conv2d(c, fc_channels, kernel_size=fc6_kernel, padding=fc6_kernel // 2)
        self.relu6 = nn.ReLU()
        self.drop6 = nn.Dropout2d(dropout)
        self.fc7 = nn.Conv2d(fc_channels, fc_channels, kernel_size=1)
        self.relu7 = nn.ReLU()
        self.drop7 = nn.Dropout2d(dropout)
        self.score_fr = nn.Conv2d(fc_channels, num_classes, kernel_size=1)
        if variant == "32s":
            self.upscore = _upsample(num_classes, 32)
        else:
            self.score_pool4 = nn.Conv2d(widths[3], num_classes, kernel_size=1)
            self.upscore2 = _upsample(num_classes, 2)
            if variant == "16s":
                self.upscore16 = _upsample(num_classes, 16)
            else:
                self.score_pool3 = nn.Conv2d(widths[2], num_classes, kernel_size=1)
                self.upscore_pool4 = _upsample(num_classes, 2)
                self.upscore8 = _upsample(num_classes, 8)

        init_kaiming(self)
        for m in self.modules():
            if isinstance(m, nn.ConvTranspose2d):
                with torch.no_grad():
                    m.weight.copy_(
                        bilinear_kernel(m.in_channels, m.kernel_size[0], m.weight.device)
                    )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pool3 = self.block3(self.block2(self.block1(x)))
        pool4 = self.block4(pool3)
        pool5 = self.block5(pool4)
        h = self.drop6(self.relu6(self.fc6(pool5)))
        h = self.drop7(self.relu7(self.fc7(h)))
        score = self.score_fr(h)
        if self.variant == "32s":
            return self.upscore(score)
        score = self.upscore2(score) + self.score_pool4(pool4)
        if self.variant == "16s":
            return self.upscore16(score)
        score = self.upscore_pool4(score) + self.score_pool3(pool3)
        return self.upscore8(score)


def _fcn(variant: str, size: str, num_classes: int | None, in_channels: int | None) -> FCN:
    spec = resolve(size, num_classes, in_channels, original_classes=21)
    if spec.original:
        return FCN(variant, spec.num_classes, spec.in_channels)
    return FCN(
        variant,
        spec.num_classes,
        spec.in_channels,
        width_divisor=8,
        fc_channels=128,
        fc6_kernel=3,
    )


def fcn32s(
    size: str = "teaching", num_classes: int | None = None, in_channels: int | None = None
) -> FCN:
    """FCN-32s: one 32x upsampling of the coarsest scores."""
    return _fcn("32s", size, num_classes, in_channels)


def fcn16s(
    size: str = "teaching", num_classes: int | None = None, in_channels: int | None = None
) -> FCN:
    """FCN-16s: 2x upsampling, add the pool4 scores, 16x upsampling."""
    return _fcn("16s", size, num_classes, in_channels)


def fcn8s(
    size: str = "teaching", num_classes: int | None = None, in_channels: int | None = None
) -> FCN:
    """FCN-8s: FCN-16s plus the pool3 scores, then 8x upsampling."""
    return _fcn("8s", size, num_classes, in_channels)
