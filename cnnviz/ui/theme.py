"""Colours and fonts of the graph drawing, shared by every view that colours layers by family.

The palette is that of a printed textbook figure: pale fills that keep black text readable on a
projector, each with a darker border of the same hue. Families come from the op registry
(:attr:`cnnviz.core.ops.OpSpec.family`); a kind the registry does not know is drawn as "opaque".
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from PySide6.QtGui import QColor, QFont


@dataclass(frozen=True)
class FamilyStyle:
    """How one family is drawn.

    Attributes:
        label: Name in the legend.
        fill: Card background (hex).
        border: Card border (hex).
    """

    label: str
    fill: str
    border: str


FAMILIES: dict[str, FamilyStyle] = {
    "convolution": FamilyStyle("convolution", "#d9e6f5", "#3f6e9e"),
    "pooling": FamilyStyle("pooling", "#fbe5d2", "#b86f2d"),
    "normalisation": FamilyStyle("normalisation", "#e0efdc", "#4f8a44"),
    "activation": FamilyStyle("activation", "#fbf3d0", "#a88a1c"),
    "linear": FamilyStyle("linear (fully connected)", "#e8def3", "#6f51a0"),
    "merge": FamilyStyle("merge (add, concat)", "#f5dde6", "#a3466e"),
    "reshape": FamilyStyle("reshape", "#eceef2", "#7b8494"),
    "regularisation": FamilyStyle("dropout", "#f1f1ee", "#8d8d84"),
    "opaque": FamilyStyle("opaque module", "#e3e3e3", "#6b6b6b"),
    "input": FamilyStyle("input", "#ffffff", "#2d3440"),
    "group": FamilyStyle("group (collapsed)", "#f3f5f8", "#556070"),
}
"""Every family the registry uses, plus "group" for collapsed blocks."""

LEGEND_ORDER = (
    "convolution",
    "pooling",
    "normalisation",
    "activation",
    "linear",
    "merge",
    "opaque",
    "group",
)
"""Families shown in the legend (the issue's seven, plus collapsed groups)."""

TEXT = "#1d2430"
MUTED_TEXT = "#5b6472"
EDGE = "#7a8391"
EDGE_LABEL = "#6a7380"
FRAME_BORDER = "#b9c1cc"
FRAME_FILLS = ("#f7f9fb", "#f0f3f7", "#e9eef4", "#e3e9f0")
FRAME_LABEL = "#4f5a69"
SELECTION = "#1f6feb"
SELECTION_EDGE = "#1f6feb"
ERROR_FILL = "#fde7e6"
ERROR_BORDER = "#c0271c"
BACKGROUND = "#ffffff"


def family_of(kind: str) -> str:
    """The drawing family of operation ``kind`` ("group" for a collapsed block)."""
    if kind == "group":
        return "group"
    return _family_of(kind)


@cache
def _family_of(kind: str) -> str:
    from cnnviz.core import ops

    spec = ops.REGISTRY.get(kind)
    if spec is None:
        return "input" if kind == "input" else "opaque"
    return spec.family if spec.family in FAMILIES else "opaque"


def style_of(kind: str) -> FamilyStyle:
    """The :class:`FamilyStyle` of operation ``kind``."""
    return FAMILIES[family_of(kind)]


@cache
def colour(hex_code: str) -> QColor:
    """A shared QColor for ``hex_code`` (paint code must not build colours per call)."""
    return QColor(hex_code)


@dataclass(frozen=True)
class Fonts:
    """The fonts of the graph drawing, built once.

    Attributes:
        title: Layer name on a card.
        detail: Kind and hyper-parameters.
        shape: Output shape on a card and tensor shapes on edges.
        frame: Label of an expanded group's frame.
        badge: The "xN" mark of a repeated block.
    """

    title: QFont
    detail: QFont
    shape: QFont
    frame: QFont
    badge: QFont


@cache
def fonts() -> Fonts:
    """The graph fonts (pixel sizes, so a PNG, an SVG and the screen agree)."""

    def make(px: int, weight: QFont.Weight = QFont.Weight.Normal, italic: bool = False) -> QFont:
        f = QFont("DejaVu Sans")
        f.setStyleHint(QFont.StyleHint.SansSerif)
        f.setPixelSize(px)
        f.setWeight(weight)
        f.setItalic(italic)
        f.setHintingPreference(QFont.HintingPreference.PreferNoHinting)
        return f

    return Fonts(
        title=make(12, QFont.Weight.DemiBold),
        detail=make(11),
        shape=make(10),
        frame=make(11, QFont.Weight.DemiBold),
        badge=make(12, QFont.Weight.Bold),
    )
