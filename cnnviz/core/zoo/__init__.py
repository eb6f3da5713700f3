"""The model zoo: the classic CNNs of a deep-learning course, as plain PyTorch modules.

Every entry builds at two sizes:

* ``"original"``: the network of the paper, or of torchvision where torchvision has it (then the
  module names, shapes and parameter counts are torchvision's, so its weights would load);
* ``"teaching"``: the same design scaled down for 1x28x28 or 3x32x32 images and ten classes,
  small enough to train in seconds on a laptop CPU.

Activations are ``nn.ReLU`` modules (so they show in a traced graph) and nothing works in place,
so that forward hooks (activation maps) and full backward hooks (Grad-CAM) see every tensor as
it was computed. Optional layers that are switched off are ``None``, never ``nn.Identity``, so
that no empty nodes appear in the graph.

Example:
    >>> from cnnviz.core import zoo
    >>> model, input_shape = zoo.build("resnet20")
    >>> input_shape
    (3, 32, 32)
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from . import (
    alexnet,
    conv_variants,
    densenet,
    fcn,
    googlenet,
    inception_resnet,
    lenet,
    mobilenet,
    nin,
    plain,
    preact_resnet,
    resnet,
    senet,
    vgg,
    wide_resnet,
    zfnet,
)
from ._common import SIZES, check_size

__all__ = ["SIZES", "ZooEntry", "build", "entries", "get", "names"]


@dataclass(frozen=True)
class ZooEntry:
    """One network of the zoo.

    Attributes:
        name: Lower-case id used on the command line, such as ``"resnet50"``.
        family: Display family, such as ``"ResNet"``.
        title: Display name, such as ``"ResNet-50"``.
        note: One line on what this network teaches.
        paper: Short citation.
        task: ``"classification"`` or ``"segmentation"``.
        original_input: (C, H, W) at original size.
        teaching_input: (C, H, W) at teaching size.
        torchvision_name: The torchvision model this matches at original size, if any.
        builder: ``builder(size="teaching", num_classes=None, in_channels=None) -> nn.Module``.
    """

    name: str
    family: str
    title: str
    note: str
    paper: str
    task: str
    original_input: tuple[int, int, int]
    teaching_input: tuple[int, int, int]
    torchvision_name: str | None
    builder: Callable[..., nn.Module]

    def input_shape(
        self, size: str = "teaching", in_channels: int | None = None
    ) -> tuple[int, int, int]:
        """(C, H, W) of the input at ``size``, with C replaced by ``in_channels`` if given."""
        c, h, w = self.original_input if check_size(size) else self.teaching_input
        return (in_channels or c, h, w)


_IMAGENET = (3, 224, 224)
_CIFAR = (3, 32, 32)
_CLS = "classification"
_SEG = "segmentation"

_LECUN = "LeCun et al., 1998, Proc. IEEE"
_KRIZHEVSKY = "Krizhevsky, Sutskever & Hinton, 2012, NIPS"
_SIMONYAN = "Simonyan & Zisserman, 2015, ICLR"
_HE = "He et al., 2016, CVPR"
_WRN = "Zagoruyko & Komodakis, 2016, BMVC"
_RESNEXT = "Xie et al., 2017, CVPR"
_DENSENET = "Huang et al., 2017, CVPR"
_SE = "Hu, Shen & Sun, 2018, CVPR"
_FCN = "Long, Shelhamer & Darrell, 2015, CVPR"


def _vgg_entries() -> list[ZooEntry]:
    out = []
    for depth in (11, 13, 16, 19):
        for bn in (False, True):
            name = f"vgg{depth}" + ("_bn" if bn else "")
            note = (
                "batch norm after every convolution makes deep plain nets train easily"
                if bn
                else "stacks of 3x3 convolutions see as far as one big filter, with fewer weights"
            )
            out.append(
                ZooEntry(
                    name=name,
                    family="VGG",
                    title=f"VGG-{depth}" + (" (batch norm)" if bn else ""),
                    note=note,
                    paper=_SIMONYAN,
                    task=_CLS,
                    original_input=_IMAGENET,
                    teaching_input=_CIFAR,
                    torchvision_name=name,
                    builder=getattr(vgg, name),
                )
            )
    return out


def _torchvision_twin(
    name: str, family: str, title: str, note: str, paper: str, builder: Callable[..., nn.Module]
) -> ZooEntry:
    return ZooEntry(name, family, title, note, paper, _CLS, _IMAGENET, _CIFAR, name, builder)


_ENTRIES: tuple[ZooEntry, ...] = (
    ZooEntry(
        "lenet5",
        "LeNet",
        "LeNet-5",
        "convolution, pooling, then fully connected layers: the pattern every CNN follows",
        _LECUN,
        _CLS,
        (1, 32, 32),
        (1, 28, 28),
        None,
        lenet.lenet5,
    ),
    ZooEntry(
        "alexnet",
        "AlexNet",
        "AlexNet",
        "ReLU, dropout and a GPU turned deep CNNs into the state of the art in 2012",
        _KRIZHEVSKY,
        _CLS,
        _IMAGENET,
        _CIFAR,
        "alexnet",
        alexnet.alexnet,
    ),
    ZooEntry(
        "alexnet_lrn",
        "AlexNet",
        "AlexNet (paper: LRN, two groups)",
        "the 2012 original: local response normalisation and convolutions split across two GPUs",
        _KRIZHEVSKY,
        _CLS,
        (3, 227, 227),
        _CIFAR,
        None,
        alexnet.alexnet_lrn,
    ),
    ZooEntry(
        "zfnet",
        "ZFNet",
        "ZFNet",
        "looking at the learned filters showed how to fix AlexNet's first layers",
        "Zeiler & Fergus, 2014, ECCV",
        _CLS,
        _IMAGENET,
        _CIFAR,
        None,
        zfnet.zfnet,
    ),
    *_vgg_entries(),
    ZooEntry(
        "nin",
        "NiN",
        "Network in Network",
        "1x1 convolutions are per-pixel MLPs; global average pooling replaces the dense layers",
        "Lin, Chen & Yan, 2014, ICLR",
        _CLS,
        _IMAGENET,
        _CIFAR,
        None,
        nin.nin,
    ),
    ZooEntry(
        "googlenet",
        "GoogLeNet",
        "GoogLeNet (Inception v1)",
        "parallel 1x1, 3x3, 5x5 and pool branches, cheap thanks to 1x1 reductions",
        "Szegedy et al., 2015, CVPR",
        _CLS,
        _IMAGENET,
        _CIFAR,
        "googlenet",
        googlenet.googlenet,
    ),
    _torchvision_twin(
        "resnet18",
        "ResNet",
        "ResNet-18",
        "identity shortcuts: learn a residual, not a mapping",
        _HE,
        resnet.resnet18,
    ),
    _torchvision_twin(
        "resnet34",
        "ResNet",
        "ResNet-34",
        "deeper basic blocks: more layers now mean less error",
        _HE,
        resnet.resnet34,
    ),
    _torchvision_twin(
        "resnet50",
        "ResNet",
        "ResNet-50",
        "bottleneck blocks (1x1-3x3-1x1) let 50 layers train",
        _HE,
        resnet.resnet50,
    ),
    _torchvision_twin(
        "resnet101",
        "ResNet",
        "ResNet-101",
        "101 layers through the same bottleneck recipe",
        _HE,
        resnet.resnet101,
    ),
    _torchvision_twin(
        "resnet152",
        "ResNet",
        "ResNet-152",
        "152 layers, still cheaper than VGG-16",
        _HE,
        resnet.resnet152,
    ),
    ZooEntry(
        "resnet20",
        "ResNet",
        "ResNet-20 (CIFAR)",
        "the CIFAR ResNet: 6n+2 layers, 16-32-64 filters, parameter-free shortcuts",
        _HE,
        _CLS,
        _CIFAR,
        _CIFAR,
        None,
        resnet.resnet20,
    ),
    ZooEntry(
        "resnet32",
        "ResNet",
        "ResNet-32 (CIFAR)",
        "deeper CIFAR ResNet: with shortcuts, more layers keep helping",
        _HE,
        _CLS,
        _CIFAR,
        _CIFAR,
        None,
        resnet.resnet32,
    ),
    ZooEntry(
        "resnet56",
        "ResNet",
        "ResNet-56 (CIFAR)",
        "56 layers where the plain net of the same depth trains worse than a 20-layer one",
        _HE,
        _CLS,
        _CIFAR,
        _CIFAR,
        None,
        resnet.resnet56,
    ),
    ZooEntry(
        "plain20",
        "ResNet",
        "Plain-20 (CIFAR, no shortcuts)",
        "ResNet-20 without its shortcuts: wrap pairs of units in residual connections by hand",
        _HE,
        _CLS,
        _CIFAR,
        _CIFAR,
        None,
        plain.plain20,
    ),
    ZooEntry(
        "plain56",
        "ResNet",
        "Plain-56 (CIFAR, no shortcuts)",
        "deeper but worse than Plain-20: the degradation problem that shortcuts solve",
        _HE,
        _CLS,
        _CIFAR,
        _CIFAR,
        None,
        plain.plain56,
    ),
    ZooEntry(
        "preact_resnet18",
        "Pre-activation ResNet",
        "PreActResNet-18",
        "BN-ReLU before each convolution keeps the shortcut a clean identity path",
        "He et al., 2016, ECCV",
        _CLS,
        _IMAGENET,
        _CIFAR,
        None,
        preact_resnet.preact_resnet18,
    ),
    _torchvision_twin(
        "wide_resnet50_2",
        "Wide ResNet",
        "Wide ResNet-50-2",
        "twice the channels inside each bottleneck: width instead of depth",
        _WRN,
        resnet.wide_resnet50_2,
    ),
    _torchvision_twin(
        "wide_resnet101_2",
        "Wide ResNet",
        "Wide ResNet-101-2",
        "ResNet-101 with twice the bottleneck width",
        _WRN,
        resnet.wide_resnet101_2,
    ),
    ZooEntry(
        "wrn16_4",
        "Wide ResNet",
        "WRN-16-4 (CIFAR)",
        "16 wide layers match a 1000-layer thin ResNet and train much faster",
        _WRN,
        _CLS,
        _CIFAR,
        _CIFAR,
        None,
        wide_resnet.wrn16_4,
    ),
    ZooEntry(
        "wrn28_10",
        "Wide ResNet",
        "WRN-28-10 (CIFAR)",
        "the paper's best CIFAR net: 28 layers, ten times wider, 36.5M parameters",
        _WRN,
        _CLS,
        _CIFAR,
        _CIFAR,
        None,
        wide_resnet.wrn28_10,
    ),
    _torchvision_twin(
        "resnext50_32x4d",
        "ResNeXt",
        "ResNeXt-50 32x4d",
        "grouped 3x3 convolutions: more paths (cardinality) beat more depth or width",
        _RESNEXT,
        resnet.resnext50_32x4d,
    ),
    _torchvision_twin(
        "resnext101_32x8d",
        "ResNeXt",
        "ResNeXt-101 32x8d",
        "ResNeXt at 101 layers with 32 groups of 8 channels",
        _RESNEXT,
        resnet.resnext101_32x8d,
    ),
    _torchvision_twin(
        "densenet121",
        "DenseNet",
        "DenseNet-121",
        "each layer sees all earlier maps of its block: features are reused, not relearned",
        _DENSENET,
        densenet.densenet121,
    ),
    _torchvision_twin(
        "densenet169",
        "DenseNet",
        "DenseNet-169",
        "deeper dense blocks with the same small growth rate",
        _DENSENET,
        densenet.densenet169,
    ),
    _torchvision_twin(
        "densenet201",
        "DenseNet",
        "DenseNet-201",
        "the deepest torchvision DenseNet-BC, still 20M parameters",
        _DENSENET,
        densenet.densenet201,
    ),
    ZooEntry(
        "se_resnet18",
        "SENet",
        "SE-ResNet-18",
        "squeeze-and-excitation: the net learns to reweight its own channels",
        _SE,
        _CLS,
        _IMAGENET,
        _CIFAR,
        None,
        senet.se_resnet18,
    ),
    ZooEntry(
        "se_resnet50",
        "SENet",
        "SE-ResNet-50",
        "channel attention for 10% more parameters and almost no extra compute",
        _SE,
        _CLS,
        _IMAGENET,
        _CIFAR,
        None,
        senet.se_resnet50,
    ),
    ZooEntry(
        "inception_resnet_v2",
        "Inception-ResNet",
        "Inception-ResNet-v2",
        "Inception modules with residual adds, scaled down by 0.1-0.3 to keep training stable",
        "Szegedy et al., 2017, AAAI",
        _CLS,
        (3, 299, 299),
        _CIFAR,
        None,
        inception_resnet.inception_resnet_v2,
    ),
    ZooEntry(
        "mobilenet_v1",
        "MobileNet",
        "MobileNet v1",
        "depthwise + pointwise convolutions: 8-9 times fewer multiply-adds for a 3x3 layer",
        "Howard et al., 2017, arXiv:1704.04861",
        _CLS,
        _IMAGENET,
        _CIFAR,
        None,
        mobilenet.mobilenet_v1,
    ),
    ZooEntry(
        "dilated_context",
        "Dilated / grouped / transposed",
        "Dilated context module",
        "dilation grows the receptive field exponentially without pooling away resolution",
        "Yu & Koltun, 2016, ICLR",
        _SEG,
        (21, 64, 64),
        _CIFAR,
        None,
        conv_variants.dilated_context,
    ),
    ZooEntry(
        "grouped_convnet",
        "Dilated / grouped / transposed",
        "Grouped-convolution net",
        "g groups cut a convolution's weights g times; a 1x1 convolution mixes them again",
        "Krizhevsky et al., 2012, NIPS; Xie et al., 2017, CVPR",
        _CLS,
        _CIFAR,
        _CIFAR,
        None,
        conv_variants.grouped_convnet,
    ),
    ZooEntry(
        "transposed_convnet",
        "Dilated / grouped / transposed",
        "Transposed-convolution encoder-decoder",
        "stride-2 transposed convolutions learn to upsample back to per-pixel predictions",
        "Dumoulin & Visin, 2016, arXiv:1603.07285; Noh et al., 2015, ICCV",
        _SEG,
        _CIFAR,
        _CIFAR,
        None,
        conv_variants.transposed_convnet,
    ),
    ZooEntry(
        "fcn32s",
        "FCN",
        "FCN-32s",
        "dense layers become convolutions: a classifier turns into a per-pixel segmenter",
        _FCN,
        _SEG,
        _IMAGENET,
        _CIFAR,
        None,
        fcn.fcn32s,
    ),
    ZooEntry(
        "fcn16s",
        "FCN",
        "FCN-16s",
        "adding pool4's scores (a skip connection) sharpens the coarse segmentation",
        _FCN,
        _SEG,
        _IMAGENET,
        _CIFAR,
        None,
        fcn.fcn16s,
    ),
    ZooEntry(
        "fcn8s",
        "FCN",
        "FCN-8s",
        "pool3 and pool4 skips: fine detail from early layers, meaning from late ones",
        _FCN,
        _SEG,
        _IMAGENET,
        _CIFAR,
        None,
        fcn.fcn8s,
    ),
)

_BY_NAME: dict[str, ZooEntry] = {e.name: e for e in _ENTRIES}
if len(_BY_NAME) != len(_ENTRIES):  # pragma: no cover - guards against editing mistakes
    raise RuntimeError("duplicate names in the zoo")


def names() -> list[str]:
    """All entry names, in teaching order (LeNet first)."""
    return [e.name for e in _ENTRIES]


def entries() -> list[ZooEntry]:
    """All entries, in teaching order (LeNet first)."""
    return list(_ENTRIES)


def get(name: str) -> ZooEntry:
    """The entry called ``name`` (case-insensitive).

    Raises:
        KeyError: No such entry; the message lists the closest names.
    """
    key = name.strip().lower()
    try:
        return _BY_NAME[key]
    except KeyError:
        close = difflib.get_close_matches(key, _BY_NAME, n=3, cutoff=0.6)
        hint = (
            f"; did you mean {', '.join(close)}?"
            if close
            else f"; choose from {', '.join(_BY_NAME)}"
        )
        raise KeyError(f"no zoo entry named {name!r}{hint}") from None


def build(
    name: str,
    size: str = "teaching",
    num_classes: int | None = None,
    in_channels: int | None = None,
) -> tuple[nn.Module, tuple[int, int, int]]:
    """Build a zoo network.

    Args:
        name: Entry name, such as ``"resnet50"``.
        size: ``"teaching"`` (small, for 1x28x28 or 3x32x32 inputs) or ``"original"``.
        num_classes: Output classes; the entry's default for that size if None (1000 for
            ImageNet nets, 21 for the original FCNs, 10 at teaching size).
        in_channels: Input channels; the entry's default if None.

    Returns:
        The model (in training mode, freshly initialised) and its input shape (C, H, W).

    Raises:
        KeyError: Unknown name.
        ValueError: Unknown size.
    """
    entry = get(name)
    check_size(size)
    model = entry.builder(size=size, num_classes=num_classes, in_channels=in_channels)
    return model, entry.input_shape(size, in_channels)
