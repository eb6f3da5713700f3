"""Scene items of the graph drawing and the scene that builds them from a layout.

:class:`GraphScene` turns an :class:`~cnnviz.core.graph.ArchGraph` and its
:class:`~cnnviz.core.analysis.Analysis` into cards (one per visible node or collapsed group),
edges and group frames, placed by :func:`cnnviz.core.layout.layout`. It needs no view: the
graph view shows it, and the export draws it into a PNG or an SVG.

Speed: a card keeps everything it paints (rectangles, arrowheads, text as ``QStaticText``) and
shares pens, brushes and fonts with every other card, so ``paint`` allocates nothing that lasts
and a zoomed-out redraw of a thousand cards is a thousand filled rectangles (level of detail).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from typing import Any

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import (
    QBrush,
    QFontMetricsF,
    QPainter,
    QPainterPath,
    QPen,
    QPolygonF,
    QStaticText,
)
from PySide6.QtWidgets import (
    QGraphicsItem,
    QGraphicsPathItem,
    QGraphicsScene,
    QStyleOptionGraphicsItem,
    QWidget,
)

from cnnviz.core.analysis import Analysis
from cnnviz.core.graph import ArchGraph, Node
from cnnviz.core.layout import EdgePath, GroupFrame, Item, Layout, VisibleNode, layout
from cnnviz.ui import theme

# Level of detail: the scale at which text becomes unreadable. Below LOD_TITLE a card is a plain
# rectangle; between the two it shows its name only.
LOD_DETAIL = 0.55
LOD_TITLE = 0.28

CARD_MIN_WIDTH = 136.0
CARD_PAD_X = 10.0
CARD_PAD_Y = 4.0
TITLE_H = 16.0
DETAIL_H = 14.0
SHAPE_H = 13.0
NODE_HEIGHT = CARD_PAD_Y * 2 + TITLE_H + DETAIL_H + SHAPE_H
GROUP_HEIGHT = NODE_HEIGHT + DETAIL_H
STACK_OFFSET = 4.0  # the cards drawn behind a collapsed block
RADIUS = 5.0
ARROW_LEN = 7.0
ARROW_HALF = 3.5
LABEL_GAP = 4.0

LAYOUT_GAPS: dict[str, float] = {
    "layer_gap": 36.0,
    "node_gap": 26.0,
    "lane_gap": 12.0,
    "padding": 14.0,
    "margin": 24.0,
}

_KIND_TEXT = {
    "relu": "ReLU",
    "relu6": "ReLU6",
    "leaky_relu": "leaky ReLU",
    "elu": "ELU",
    "gelu": "GELU",
    "silu": "SiLU (swish)",
    "sigmoid": "sigmoid",
    "tanh": "tanh",
    "hardswish": "hard swish",
    "hardsigmoid": "hard sigmoid",
    "mish": "Mish",
    "softplus": "softplus",
    "softmax": "softmax",
    "log_softmax": "log-softmax",
    "batch_norm1d": "batch norm",
    "batch_norm2d": "batch norm",
    "instance_norm2d": "instance norm",
    "layer_norm": "layer norm",
    "layer_norm2d": "layer norm",
    "add": "add (+)",
    "mul": "multiply (×)",
    "cat": "concatenate",
    "flatten": "flatten",
    "identity": "identity",
    "input": "input",
    "global_avg_pool2d": "global avg pool",
    "global_max_pool2d": "global max pool",
    "mean": "mean",
    "reshape": "reshape",
    "permute": "permute",
    "transpose": "transpose",
    "channel_shuffle": "channel shuffle",
    "chunk": "chunk",
    "getitem": "select",
    "parameter": "parameter",
    "stochastic_depth": "stochastic depth",
}


# --------------------------------------------------------------------------- text
def _size(value: Any) -> str:
    """``3×3`` for a kernel or window given as an int or a list."""
    if isinstance(value, (list, tuple)):
        if value and all(v == value[0] for v in value) and len(value) <= 3:
            return "×".join(str(v) for v in value)
        return "×".join(str(v) for v in value)
    return f"{value}×{value}"


def _first(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return max(value) if value else 1
    return value


def shape_text(shape: Any) -> str:
    """``64×56×56`` for a tensor shape (without batch); several shapes joined; "?" unknown."""
    if shape is None:
        return "?"
    if isinstance(shape, tuple) and shape and isinstance(shape[0], tuple):
        return ", ".join(shape_text(s) for s in shape)
    return "×".join(str(s) for s in shape)


@cache
def edge_shape_text(text: str | None) -> str | None:
    """The layout's ``(64, 56, 56)`` written as on the cards: ``64×56×56``."""
    if not text:
        return None
    if text.count("(") == 1 and text.startswith("(") and text.endswith(")"):
        return "×".join(p.strip() for p in text[1:-1].split(","))
    return text


def describe(node: Node) -> str:
    """The kind and key hyper-parameters of ``node`` in a textbook's words: ``3×3 conv, 64, /2``."""
    k, p = node.kind, node.params
    if k.startswith("conv"):
        transposed = "transpose" in k
        text = f"{_size(p.get('kernel_size', '?'))} {'deconv' if transposed else 'conv'}"
        text += f", {p.get('out_channels', '?')}"
        stride = _first(p.get("stride", 1))
        if stride != 1:
            text += f", ×{stride}" if transposed else f", /{stride}"
        groups = p.get("groups", 1) or 1
        if groups > 1:
            depthwise = groups == p.get("in_channels") and not transposed
            text += ", depthwise" if depthwise else f", {groups} groups"
        dilation = _first(p.get("dilation", 1))
        if dilation != 1:
            text += f", dilation {dilation}"
        return text
    if k == "linear":
        return f"fully connected, {p.get('out_features', '?')}"
    if k in ("max_pool1d", "max_pool2d", "avg_pool1d", "avg_pool2d"):
        kind = "max" if k.startswith("max") else "avg"
        stride = _first(p.get("stride") or p.get("kernel_size", 1))
        text = f"{_size(p.get('kernel_size', '?'))} {kind} pool"
        return text + (f", /{stride}" if stride != 1 else "")
    if k.startswith("adaptive_"):
        kind = "max" if "max" in k else "avg"
        out = p.get("output_size", "?")
        out_text = _size(out) if k.endswith("2d") else str(out)
        return f"adaptive {kind} pool → {out_text}"
    if k == "max_unpool2d":
        return f"{_size(p.get('kernel_size', '?'))} max unpool"
    if k == "group_norm":
        return f"group norm, {p.get('num_groups', '?')} groups"
    if k == "local_response_norm":
        return f"LRN, size {p.get('size', '?')}"
    if k in ("dropout", "dropout2d"):
        return f"dropout, p = {p.get('p', 0.5)}"
    if k == "leaky_relu":
        return f"leaky ReLU, {p.get('negative_slope', 0.01)}"
    if k == "upsample":
        scale = p.get("scale_factor")
        mode = p.get("mode", "nearest")
        return f"upsample ×{_first(scale)}, {mode}" if scale else f"upsample, {mode}"
    if k == "zero_pad2d":
        return f"zero pad {p.get('padding', '?')}"
    if k == "opaque":
        what = p.get("type") or p.get("function") or "module"
        return f"opaque: {str(what).rsplit('.', 1)[-1]}"
    return _KIND_TEXT.get(k, k.replace("_", " "))


@dataclass
class CardText:
    """What one card shows; measured before the layout so that the layout knows its size."""

    title: str
    lines: tuple[str, ...]
    tooltip: str
    family: str
    error: bool
    repeat: int = 1


def card_text(vn: VisibleNode, graph: ArchGraph, analysis: Analysis | None) -> CardText:
    """The title, detail lines and tooltip of the card for ``vn``."""
    if not vn.is_group:
        node = graph[vn.nodes[0]]
        na = analysis.nodes.get(node.name) if analysis is not None else None
        shape = shape_text(na.output_shape) if na is not None else ""
        detail = describe(node)
        tip = f"{node.name}\n{detail}" + (f"\noutput {shape}" if shape else "")
        if node.training_only:
            tip += "\nruns in training only (an auxiliary classifier)"
        error = bool(na is not None and na.error)
        if error:
            tip = f"{node.name}: {na.error}" + (f"\nFix: {na.fix}" if na.fix else "")
        return CardText(vn.label, (detail, shape), tip, theme.family_of(node.kind), error)
    # a collapsed block: totals over every node it stands for
    n = len(vn.nodes)
    params = macs = 0
    errors: list[str] = []
    out_shape: Any = None
    if analysis is not None:
        for name in vn.nodes:
            na = analysis.nodes.get(name)
            if na is None:
                continue
            params += na.total_params
            macs += na.macs
            if na.error:
                errors.append(f"{name}: {na.error}")
        last = analysis.groups.get(vn.group if vn.repeat == 1 else _last_group(vn))
        out_shape = last.output_shape if last is not None else None
    if vn.repeat > 1:
        title = f"{vn.group} … {_last_group(vn)}"
        count = f"{vn.repeat} identical blocks, {n // vn.repeat} layers each"
    else:
        # inside its parent's frame the parent's name is written already; "0" alone says little
        parent, _, tail = vn.group.rpartition(".")
        title = tail if parent and not tail.isdigit() else vn.group
        count = f"group of {n} layer{'s' if n != 1 else ''}"
        if all(graph[name].training_only for name in vn.nodes):
            count += ", training only"
    figures = f"{compact(params)} params" if params else "no parameters"
    if macs:
        figures += f" · {compact(macs)} MACs"
    shape = shape_text(out_shape) if analysis is not None else ""
    tip = f"{vn.label}\n{count}\n{figures}\n(double-click to open)"
    if errors:
        tip = "Problems inside:\n" + "\n".join(errors[:8]) + ("\n…" if len(errors) > 8 else "")
    return CardText(title, (count, figures, shape), tip, "group", bool(errors), max(1, vn.repeat))


def compact(n: float) -> str:
    """Three significant digits and a prefix: ``75.0k``, ``231M``, ``1.09G``."""
    for div, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= div * 0.9995:  # 999,999 reads 1M, not 1e+03k
            v = n / div
            return f"{v:.3g}{prefix}" if v < 1000 else f"{v:.0f}{prefix}"
    return f"{int(n)}"


def _last_group(vn: VisibleNode) -> str:
    """The last group of a repeated run: ``layer3.1..5 x5`` stands for layer3.1 … layer3.5."""
    first = vn.group
    head = first.rsplit(".", 1)[0] + "." if "." in first else ""
    tail = vn.label.rsplit(" x", 1)[0].split("..", 1)[-1]
    return head + tail


# --------------------------------------------------------------------------- shared paint tools
@cache
def _pen(hex_code: str, width: float = 1.0, dashed: bool = False, cosmetic: bool = False) -> QPen:
    pen = QPen(theme.colour(hex_code), width)
    pen.setJoinStyle(Qt.PenJoinStyle.RoundJoin)
    pen.setCapStyle(Qt.PenCapStyle.FlatCap)
    if dashed:
        pen.setStyle(Qt.PenStyle.DashLine)
    pen.setCosmetic(cosmetic)
    return pen


@cache
def _brush(hex_code: str) -> QBrush:
    return QBrush(theme.colour(hex_code))


@cache
def _metrics(which: str) -> QFontMetricsF:
    return QFontMetricsF(getattr(theme.fonts(), which))


_widths: dict[tuple[str, str], float] = {}


def _text_width(which: str, text: str) -> float:
    """Advance width of ``text`` in font ``which`` (memoised: most labels repeat)."""
    key = (which, text)
    w = _widths.get(key)
    if w is None:
        w = _widths[key] = _metrics(which).horizontalAdvance(text)
    return w


def _static(text: str) -> QStaticText:
    st = QStaticText(text)
    st.setTextFormat(Qt.TextFormat.PlainText)
    return st


_NO_PEN = QPen(Qt.PenStyle.NoPen)


# --------------------------------------------------------------------------- items
class CardItem(QGraphicsItem):
    """One visible node or collapsed group: a rounded card in its family's colours.

    It also draws the arrowheads of the edges that enter it and the shape labels of the edges
    that leave it, so that those need no items of their own. Text, arrowheads and labels are
    turned into paint objects on the first paint, so building a big scene stays cheap.
    """

    def __init__(self, item: Item, text: CardText):
        super().__init__()
        self.item = item
        self.text = text
        self.is_group = item.kind == "group"
        self.selected = False
        self.hot_sources: frozenset[str] = frozenset()
        w, h = item.width, item.height
        self.rect = QRectF(0.0, 0.0, w, h)
        style = theme.FAMILIES[text.family]
        if text.error:
            self._fill = _brush(theme.ERROR_FILL)
            self._border = _pen(theme.ERROR_BORDER, 2.0, dashed=True)
        else:
            self._fill = _brush(style.fill)
            self._border = _pen(style.border, 1.4 if self.is_group else 1.2)
        self.arrows: list[tuple[float, str]] = []  # (local x on the top edge, source id)
        self.labels: list[tuple[float, float, str]] = []  # (x, y, text) below the card
        self._arrow_polys: list[tuple[QPolygonF, str]] | None = None
        self._static: list[tuple[QStaticText, float, float, int]] | None = None
        self._label_static: list[tuple[QStaticText, float, float]] | None = None
        stack = (2 if text.repeat > 1 else 1) * STACK_OFFSET if self.is_group else 0.0
        self._bounds = QRectF(-4.0, -ARROW_LEN - 2.0, w + 8.0 + stack, h + ARROW_LEN + 6.0 + stack)
        self.setPos(item.x, item.y)
        self.setZValue(1.0)

    # ---------------------------------------------------------- decorations from the edges
    def add_label(self, x: float, text: str, right: bool) -> None:
        """A tensor-shape label just below the card beside an edge leaving it at local ``x``."""
        width = _text_width("shape", text)
        lx = x - LABEL_GAP - width if right else x + LABEL_GAP
        # below the cards drawn behind a collapsed block
        stack = (2 if self.text.repeat > 1 else 1) * STACK_OFFSET if self.is_group else 0.0
        y = self.item.height + 2.0 + stack
        self.labels.append((lx, y, text))
        self._bounds = self._bounds.united(QRectF(lx - 1, y, width + 2, SHAPE_H + 1))

    # ---------------------------------------------------------- QGraphicsItem
    def boundingRect(self) -> QRectF:  # noqa: N802 - Qt's name
        return self._bounds

    def shape(self) -> QPainterPath:
        path = QPainterPath()
        path.addRect(self.rect)
        return path

    def set_selected(self, on: bool) -> None:
        """Draw (or stop drawing) the selection outline."""
        if on != self.selected:
            self.selected = on
            self.update()

    def set_hot_sources(self, sources: Iterable[str]) -> None:
        """Arrowheads of edges from these sources take the selection colour."""
        new = frozenset(sources)
        if new != self.hot_sources:
            self.hot_sources = new
            self.update()

    def _build_static(self) -> None:
        f = self.text
        w = self.item.width
        rows: list[tuple[QStaticText, float, float, int]] = []
        y = CARD_PAD_Y
        title = f"⚠ {f.title}" if f.error else f.title
        rows.append((_static(title), (w - _text_width("title", title)) / 2, y, 0))
        y += TITLE_H
        last = len(f.lines) - 1
        for k, line in enumerate(f.lines):
            if not line:
                continue
            which = "shape" if k == last else "detail"
            rows.append(
                (_static(line), (w - _text_width(which, line)) / 2, y, 2 if k == last else 1)
            )
            y += SHAPE_H if k == last else DETAIL_H
        self._static = rows
        self._label_static = [(_static(t), x, y) for x, y, t in self.labels]
        self._arrow_polys = [
            (
                QPolygonF(
                    [
                        QPointF(x, 0.0),
                        QPointF(x - ARROW_HALF, -ARROW_LEN),
                        QPointF(x + ARROW_HALF, -ARROW_LEN),
                    ]
                ),
                source,
            )
            for x, source in self.arrows
        ]

    def paint(
        self,
        painter: QPainter,
        option: QStyleOptionGraphicsItem,
        widget: QWidget | None = None,
    ) -> None:
        if self._static is None:
            self._build_static()
        lod = option.levelOfDetailFromTransform(painter.worldTransform())
        rect = self.rect
        painter.setPen(_NO_PEN)
        edge_brush = _brush(theme.EDGE)
        hot_brush = _brush(theme.SELECTION_EDGE)
        hot = self.hot_sources
        for tri, source in self._arrow_polys:
            painter.setBrush(hot_brush if self.selected or source in hot else edge_brush)
            painter.drawPolygon(tri)
        painter.setPen(self._border)
        painter.setBrush(self._fill)
        if self.is_group:
            for k in range(2 if self.text.repeat > 1 else 1, 0, -1):
                d = k * STACK_OFFSET
                painter.drawRoundedRect(rect.translated(d, d), RADIUS, RADIUS)
        painter.drawRoundedRect(rect, RADIUS, RADIUS)
        if self.selected:
            painter.setPen(_pen(theme.SELECTION, 2.5))
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.drawRoundedRect(rect.adjusted(-2.5, -2.5, 2.5, 2.5), RADIUS + 2, RADIUS + 2)
        fonts = theme.fonts()
        text_pen = _pen(theme.ERROR_BORDER if self.text.error else theme.TEXT)
        if lod < LOD_DETAIL:
            st, x, _, _ = self._static[0]
            painter.setFont(fonts.title)
            painter.setPen(text_pen)
            painter.drawStaticText(QPointF(x, (rect.height() - TITLE_H) / 2), st)
            return
        muted_pen = _pen(theme.MUTED_TEXT)
        font_of = (fonts.title, fonts.detail, fonts.shape)
        for st, x, y, which in self._static:
            painter.setFont(font_of[which])
            painter.setPen(text_pen if which < 2 else muted_pen)
            painter.drawStaticText(QPointF(x, y), st)
        if self.text.repeat > 1:
            painter.setFont(fonts.badge)
            painter.setPen(_pen(theme.TEXT))
            painter.drawText(
                QRectF(rect.right() - 46, CARD_PAD_Y, 38, TITLE_H),
                int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter),
                f"×{self.text.repeat}",
            )
        if self._label_static:
            painter.setFont(fonts.shape)
            painter.setPen(_pen(theme.EDGE_LABEL))
            for st, x, y in self._label_static:
                painter.drawStaticText(QPointF(x, y), st)


class FrameItem(QGraphicsItem):
    """The frame around an expanded group, with the group's name in its top-left corner."""

    def __init__(self, frame: GroupFrame):
        super().__init__()
        self.frame = frame
        self.group = frame.group
        self.selected = False
        self.rect = QRectF(0.0, 0.0, frame.width, frame.height)
        self._bounds = self.rect.adjusted(-3, -3, 3, 3)
        self.label = frame.group.rsplit(".", 1)[-1]
        self.tooltip = f"{frame.group} (double-click to close)"
        self._fill = _brush(theme.FRAME_FILLS[min(frame.depth - 1, len(theme.FRAME_FILLS) - 1)])
        self._border = _pen(theme.FRAME_BORDER, 1.0)
        self._static: QStaticText | None = None
        self.setPos(frame.x, frame.y)
        self.setZValue(-10.0 + frame.depth)

    def boundingRect(self) -> QRectF:  # noqa: N802 - Qt's name
        return self._bounds

    def shape(self) -> QPainterPath:
        path = QPainterPath()
        path.addRect(self.rect)
        return path

    def set_selected(self, on: bool) -> None:
        """Draw (or stop drawing) the selection outline."""
        if on != self.selected:
            self.selected = on
            self.update()

    def paint(
        self,
        painter: QPainter,
        option: QStyleOptionGraphicsItem,
        widget: QWidget | None = None,
    ) -> None:
        # A frame may cover the whole viewport: its fill is drawn without antialiasing (a
        # smoothed fill of that area costs milliseconds), its thin border with it.
        smooth = painter.testRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, False)
        painter.setPen(_NO_PEN)
        painter.setBrush(self._fill)
        painter.drawRoundedRect(self.rect, 8.0, 8.0)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, smooth)
        painter.setPen(_pen(theme.SELECTION, 2.5) if self.selected else self._border)
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawRoundedRect(self.rect, 8.0, 8.0)
        if self._static is None:
            self._static = _static(self.label)
        painter.setFont(theme.fonts().frame)
        painter.setPen(_pen(theme.SELECTION if self.selected else theme.FRAME_LABEL))
        painter.drawStaticText(QPointF(9.0, 6.0), self._static)


def add_edge_path(path: QPainterPath, points: tuple[tuple[float, float], ...], shorten: float):
    """Add one edge to ``path``: a polyline whose slanted pieces become S-curves.

    The curves leave and arrive vertically, as the edges of a hand-drawn figure do; the last
    ``shorten`` units are left to the arrowhead.
    """
    x0, y0 = points[0]
    path.moveTo(x0, y0)
    last = len(points) - 1
    line, cubic = path.lineTo, path.cubicTo
    for k in range(1, last + 1):
        x, y = points[k]
        if k == last and y - y0 > shorten + 1:
            y -= shorten
        if -0.5 < x - x0 < 0.5:
            line(x, y)
        else:
            dy = (y - y0) * 0.5
            cubic(x0, y0 + dy, x, y - dy, x, y)
        x0, y0 = x, y


def edge_path(points: tuple[tuple[float, float], ...], shorten: float = 0.0) -> QPainterPath:
    """One edge as a path (see :func:`add_edge_path`)."""
    path = QPainterPath()
    add_edge_path(path, points, shorten)
    return path


class EdgeBundleItem(QGraphicsPathItem):
    """Every edge leaving one item, as one path painted by Qt itself (no Python ``paint``)."""

    def __init__(self, source: str, path: QPainterPath, tooltip: str):
        super().__init__(path)
        self.source = source
        self.tooltip = tooltip
        self.setPen(_pen(theme.EDGE, 1.25))


class SketchItem(QGraphicsItem):
    """The whole drawing as plain rectangles and lines, for scales at which text is unreadable.

    One item with one ``paint`` instead of a thousand keeps a zoomed-out redraw of a big graph
    far under a frame (the cards, frames and edges are hidden meanwhile).
    """

    def __init__(self, scene: GraphScene):
        super().__init__()
        lay = scene.layout
        self._bounds = QRectF(0.0, 0.0, lay.width, lay.height)
        by_fill: dict[str, list[QRectF]] = {}
        for card in scene.cards.values():
            it = card.item
            style = theme.FAMILIES[card.text.family]
            fill = (
                theme.ERROR_BORDER
                if card.text.error
                else (style.border if card.is_group else style.fill)
            )
            by_fill.setdefault(fill, []).append(QRectF(it.x, it.y, it.width, it.height))
        self._cards = [(_brush(k), v) for k, v in by_fill.items()]
        by_depth: dict[int, list[QRectF]] = {}
        for f in lay.frames:
            by_depth.setdefault(f.depth, []).append(QRectF(f.x, f.y, f.width, f.height))
        self._frames = [
            (_brush(theme.FRAME_FILLS[min(d - 1, len(theme.FRAME_FILLS) - 1)]), rects)
            for d, rects in sorted(by_depth.items())
        ]
        edges = QPainterPath()
        for e in lay.edges:
            pts = e.points
            edges.moveTo(*pts[0])
            for x, y in pts[1:]:
                edges.lineTo(x, y)
        self._edges = edges
        self.selected: QRectF | None = None
        self.setZValue(5.0)

    def boundingRect(self) -> QRectF:  # noqa: N802 - Qt's name
        return self._bounds

    def paint(
        self,
        painter: QPainter,
        option: QStyleOptionGraphicsItem,
        widget: QWidget | None = None,
    ) -> None:
        painter.setPen(_pen(theme.FRAME_BORDER, 0.0, cosmetic=True))
        for brush, rects in self._frames:
            painter.setBrush(brush)
            painter.drawRects(rects)
        painter.setPen(_pen(theme.EDGE, 0.0, cosmetic=True))
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawPath(self._edges)
        painter.setPen(_NO_PEN)
        for brush, rects in self._cards:
            painter.setBrush(brush)
            painter.drawRects(rects)
        if self.selected is not None:
            painter.setPen(_pen(theme.SELECTION, 3.0, cosmetic=True))
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.drawRect(self.selected)


# --------------------------------------------------------------------------- the scene
def card_size(text: CardText, is_group: bool) -> tuple[float, float]:
    """Width and height of the card that shows ``text``."""
    widest = _text_width("title", ("⚠ " if text.error else "") + text.title)
    if text.repeat > 1:
        widest += 2 * 44.0
    last = len(text.lines) - 1
    for k, line in enumerate(text.lines):
        widest = max(widest, _text_width("shape" if k == last else "detail", line))
    width = max(CARD_MIN_WIDTH, math.ceil((widest + 2 * CARD_PAD_X) / 8.0) * 8.0)
    return width, GROUP_HEIGHT if is_group else NODE_HEIGHT


@dataclass(frozen=True)
class SceneState:
    """What the user has opened: the input of :meth:`GraphScene.build`.

    Attributes:
        collapsed: Groups drawn as one block.
        unrolled: First groups of "xN" runs the user opened.
        repeat_collapse: Whether identical consecutive groups merge into "xN" blocks.
    """

    collapsed: frozenset[str]
    unrolled: frozenset[str] = frozenset()
    repeat_collapse: bool = True


class GraphScene(QGraphicsScene):
    """The drawing of one graph in one state; rebuilt whole by :meth:`build`.

    Attributes:
        graph: The graph drawn.
        analysis: Its analysis, or None.
        layout: The layout the items were placed by.
        state: What is open.
        cards: Card of every visible item, by item id.
        frames: Frame of every expanded group, by group path.
        bundles: The edges leaving each item, by source item id.
        edges_of: The layout's edges at each item (entering and leaving), by item id.
    """

    def __init__(self, parent: Any = None):
        super().__init__(parent)
        self.setItemIndexMethod(QGraphicsScene.ItemIndexMethod.BspTreeIndex)
        self.setBackgroundBrush(_brush(theme.BACKGROUND))
        self.graph: ArchGraph | None = None
        self.analysis: Analysis | None = None
        self.layout: Layout | None = None
        self.state = SceneState(frozenset())
        self.cards: dict[str, CardItem] = {}
        self.frames: dict[str, FrameItem] = {}
        self.bundles: dict[str, EdgeBundleItem] = {}
        self.edges_of: dict[str, list[EdgePath]] = {}
        self.sketch_mode = False
        self._sketch: SketchItem | None = None
        self._hot: list[QGraphicsPathItem] = []
        self._selection: tuple[str | None, str | None] = (None, None)

    def build(
        self,
        graph: ArchGraph,
        analysis: Analysis | None,
        state: SceneState,
        runs: list[tuple[str, ...]] | None = None,
    ) -> Layout:
        """Lay out ``graph`` as ``state`` says and replace every item.

        Args:
            graph: The graph.
            analysis: Its analysis (shapes and errors), or None.
            state: What is open.
            runs: :func:`~cnnviz.core.layout.find_repeats` of the graph when known already.
        """
        texts: dict[str, CardText] = {}

        def size(vn: VisibleNode) -> tuple[float, float]:
            t = card_text(vn, graph, analysis)
            texts[vn.id] = t
            return card_size(t, vn.is_group)

        lay = layout(
            graph,
            state.collapsed,
            size,
            analysis=analysis,
            repeat_collapse=state.repeat_collapse,
            unrolled=state.unrolled,
            runs=runs,
            **LAYOUT_GAPS,
        )
        self._hot = []
        self._sketch = None
        self.sketch_mode = False
        self._selection = (None, None)
        self.clear()
        self.graph, self.analysis, self.layout, self.state = graph, analysis, lay, state
        self.cards, self.frames, self.bundles = {}, {}, {}
        add = self.addItem
        for f in lay.frames:
            fi = FrameItem(f)
            self.frames[f.group] = fi
            add(fi)
        cards = self.cards
        for it in lay.items:
            cards[it.id] = CardItem(it, texts[it.id])
        edges_of: dict[str, list[EdgePath]] = {}
        paths: dict[str, QPainterPath] = {}
        labels: dict[tuple[str, float], list[Any]] = {}  # start -> [shapes, went left, right]
        shorten = ARROW_LEN - 1.0
        for e in lay.edges:
            pts = e.points
            src, dst = e.source, e.target
            edges_of.setdefault(src, []).append(e)
            edges_of.setdefault(dst, []).append(e)
            path = paths.get(src)
            if path is None:
                path = paths[src] = QPainterPath()
            add_edge_path(path, pts, shorten)
            target = cards[dst]
            target.arrows.append((pts[-1][0] - target.item.x, src))
            x0 = pts[0][0]
            rec = labels.get((src, x0))
            if rec is None:
                rec = labels[(src, x0)] = [set(), False, False]
            if e.shape:
                rec[0].add(e.shape)
            dx = pts[1][0] - x0
            if dx < -0.5:
                rec[1] = True
            elif dx > 0.5:
                rec[2] = True
        for (src, x0), (shapes, left, right) in labels.items():
            if len(shapes) == 1:
                card = cards[src]
                card.add_label(x0 - card.item.x, edge_shape_text(shapes.pop()), right and not left)
        for src, path in paths.items():
            bundle = EdgeBundleItem(src, path, src)
            self.bundles[src] = bundle
            add(bundle)
        for card in cards.values():
            add(card)
        self.edges_of = edges_of
        self.setSceneRect(QRectF(0.0, 0.0, lay.width, lay.height))
        return lay

    # ----------------------------------------------------------------- level of detail
    def set_sketch_mode(self, on: bool) -> None:
        """Draw everything as one :class:`SketchItem` (True) or as cards and frames (False)."""
        if on == self.sketch_mode or self.layout is None:
            return
        self.sketch_mode = on
        sketch = self.sketch_item()
        if sketch.scene() is None:
            self.addItem(sketch)
        sketch.setVisible(on)
        show = not on
        for group in (self.cards.values(), self.frames.values(), self.bundles.values(), self._hot):
            for item in group:
                item.setVisible(show)

    def sketch_item(self) -> SketchItem:
        """The sketch of the current drawing (made on first use; also drawn by the overview)."""
        if self._sketch is None:
            self._sketch = SketchItem(self)
            self._update_sketch_selection()
        return self._sketch

    def sketch_for_scale(self, scale: float) -> bool:
        """Whether a drawing at ``scale`` should be a sketch."""
        return scale < LOD_TITLE

    # ----------------------------------------------------------------- selection
    def show_selection(self, card_id: str | None, frame: str | None) -> None:
        """Outline card ``card_id`` (with its edges) or frame ``frame``; None for neither."""
        if (card_id, frame) == self._selection:
            return
        old_card, old_frame = self._selection
        self._selection = (card_id, frame)
        if old_card in self.cards:
            self.cards[old_card].set_selected(False)
        if old_frame in self.frames:
            self.frames[old_frame].set_selected(False)
        for item in self._hot:
            self.removeItem(item)
        self._hot = []
        for card in self.cards.values():
            if card.hot_sources:
                card.set_hot_sources(())
        if frame in self.frames:
            self.frames[frame].set_selected(True)
        if card_id in self.cards:
            self.cards[card_id].set_selected(True)
            pen = _pen(theme.SELECTION_EDGE, 2.2)
            for e in self.edges_of.get(card_id, ()):
                hot = QGraphicsPathItem(edge_path(e.points, ARROW_LEN - 1.0))
                hot.setPen(pen)
                hot.setZValue(0.5)
                hot.setVisible(not self.sketch_mode)
                self.addItem(hot)
                self._hot.append(hot)
                if e.source == card_id:
                    self.cards[e.target].set_hot_sources({card_id})
        self._update_sketch_selection()

    def _update_sketch_selection(self) -> None:
        if self._sketch is None:
            return
        card_id, frame = self._selection
        rect = None
        if card_id in self.cards:
            it = self.cards[card_id].item
            rect = QRectF(it.x, it.y, it.width, it.height)
        elif frame in self.frames:
            f = self.frames[frame].frame
            rect = QRectF(f.x, f.y, f.width, f.height)
        self._sketch.selected = rect
        self._sketch.update()

    def families(self) -> list[str]:
        """Families drawn in the scene, in legend order."""
        seen = {c.text.family for c in self.cards.values()}
        return [f for f in theme.LEGEND_ORDER if f in seen] + sorted(
            f for f in seen if f not in theme.LEGEND_ORDER
        )
