"""Helpers shared by the zoo builders: size names, defaults and weight initialisation."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

SIZES: tuple[str, ...] = ("teaching", "original")


@dataclass(frozen=True)
class BuildSpec:
    """What a public builder resolved its arguments to.

    Attributes:
        original: True for the paper / torchvision size, False for the teaching size.
        num_classes: Number of outputs (classes, or per-pixel classes for segmentation).
        in_channels: Number of input channels.
    """

    original: bool
    num_classes: int
    in_channels: int


def check_size(size: str) -> bool:
    """Return True for ``"original"`` and False for ``"teaching"``.

    Raises:
        ValueError: ``size`` is neither of the two, with the choices in the message.
    """
    if size not in SIZES:
        raise ValueError(f"unknown size {size!r}; choose one of {', '.join(map(repr, SIZES))}")
    return size == "original"


def resolve(
    size: str,
    num_classes: int | None,
    in_channels: int | None,
    *,
    original_classes: int = 1000,
    teaching_classes: int = 10,
    original_channels: int = 3,
    teaching_channels: int = 3,
) -> BuildSpec:
    """Fill in the defaults of a public builder for the requested size.

    Args:
        size: ``"teaching"`` or ``"original"``.
        num_classes: Requested number of classes, or None for the default of that size.
        in_channels: Requested number of input channels, or None for the default of that size.
        original_classes: Default classes at original size (1000 for ImageNet).
        teaching_classes: Default classes at teaching size.
        original_channels: Default input channels at original size.
        teaching_channels: Default input channels at teaching size.

    Returns:
        The resolved :class:`BuildSpec`.

    Raises:
        ValueError: Unknown size, or a non-positive class or channel count.
    """
    original = check_size(size)
    if num_classes is None:
        num_classes = original_classes if original else teaching_classes
    if in_channels is None:
        in_channels = original_channels if original else teaching_channels
    if num_classes < 1:
        raise ValueError(f"num_classes must be positive, got {num_classes}")
    if in_channels < 1:
        raise ValueError(f"in_channels must be positive, got {in_channels}")
    return BuildSpec(original=original, num_classes=num_classes, in_channels=in_channels)


def init_kaiming(model: nn.Module, linear_std: float | None = 0.01) -> None:
    """He initialisation for convolutions, unit batch norm, small normal linear layers.

    This is the scheme torchvision uses for VGG and ResNet; it lets the deep nets of the zoo
    train from scratch at teaching size without further care.

    Args:
        model: The module whose submodules are initialised in place.
        linear_std: Standard deviation of linear weights; None keeps PyTorch's default.
    """
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear) and linear_std is not None:
            nn.init.normal_(m.weight, 0.0, linear_std)
            nn.init.zeros_(m.bias)


def count_parameters(model: nn.Module) -> int:
    """Number of learnable parameters (those with ``requires_grad``)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
