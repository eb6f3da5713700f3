"""Export the graph drawing as PNG or SVG, and the headless ``cnnviz graph`` command.

The image is the scene drawn at full detail (the level of detail follows the export scale, so
at scale 1 every card shows its text), with an optional legend of the layer families in a
column on the right. In an SVG every label stays a ``<text>`` element: it can be searched,
edited and restyled in a drawing program.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from cnnviz.errors import CnnvizError

if TYPE_CHECKING:  # Qt loads on first use: ``cnnviz --help`` must stay quick
    from PySide6.QtCore import QPointF, QRectF, QSize
    from PySide6.QtGui import QPainter

MAX_PIXELS_SIDE = 16000
"""A PNG larger than this on either side is drawn at a smaller scale (QImage's limit is 32767)."""

LEGEND_ROW = 20.0
LEGEND_PAD = 14.0
IMAGE_FORMATS = (".png", ".svg")


class ExportError(CnnvizError):
    """The image could not be written (unknown format, unwritable path, empty drawing)."""


def legend_box_width(families: list[str]) -> float:
    """Width of the legend box for ``families``: its longest line, a swatch and padding."""
    from PySide6.QtGui import QFontMetricsF

    from cnnviz.ui import theme

    fonts = theme.fonts()
    title = QFontMetricsF(fonts.frame).horizontalAdvance("Layer families")
    detail = QFontMetricsF(fonts.detail)
    rows = [30 + detail.horizontalAdvance(theme.FAMILIES[f].label) for f in families]
    return math.ceil(max([title, *rows]) + 2 * LEGEND_PAD)


def legend_column_width(families: list[str]) -> float:
    """Width the legend adds on the right of an exported image (0 without families)."""
    return legend_box_width(families) + 2 * LEGEND_PAD if families else 0.0


def legend_height(families: list[str]) -> float:
    """Height of the legend box for ``families``."""
    return 2 * LEGEND_PAD + LEGEND_ROW * (len(families) + 1)


def paint_legend(painter: QPainter, origin: QPointF, families: list[str]) -> None:
    """Draw the legend (a swatch and a name per family) with its top-left corner at ``origin``."""
    from PySide6.QtCore import QPointF, QRectF, QSizeF
    from PySide6.QtGui import QStaticText

    from cnnviz.ui import theme

    fonts = theme.fonts()
    box = QRectF(origin, QSizeF(legend_box_width(families), legend_height(families)))
    painter.setPen(theme.colour(theme.FRAME_BORDER))
    painter.setBrush(theme.colour("#ffffff"))
    painter.drawRoundedRect(box, 6.0, 6.0)
    painter.setFont(fonts.frame)
    painter.setPen(theme.colour(theme.FRAME_LABEL))
    x0, y = origin.x() + LEGEND_PAD, origin.y() + LEGEND_PAD
    painter.drawStaticText(QPointF(x0, y), QStaticText("Layer families"))
    painter.setFont(fonts.detail)
    for fam in families:
        y += LEGEND_ROW
        style = theme.FAMILIES[fam]
        painter.setPen(theme.colour(style.border))
        painter.setBrush(theme.colour(style.fill))
        painter.drawRoundedRect(QRectF(x0, y + 1, 22, 13), 3, 3)
        painter.setPen(theme.colour(theme.TEXT))
        painter.drawStaticText(QPointF(x0 + 30, y), QStaticText(style.label))


def export_scene(
    scene,
    path: str | os.PathLike[str],
    source: QRectF | None = None,
    scale: float = 1.0,
    legend: bool = True,
    title: str = "",
) -> QSize:
    """Write ``scene`` (a :class:`~cnnviz.ui.graph_items.GraphScene`) to a PNG or SVG file.

    Args:
        scene: The scene to draw.
        path: Target file; its suffix (``.png`` or ``.svg``) picks the format.
        source: Part of the scene to draw; the whole drawing when None.
        scale: Pixels per scene unit. A PNG is drawn smaller when it would exceed
            :data:`MAX_PIXELS_SIDE` on a side.
        legend: Add a legend of the families drawn, in a column on the right.
        title: Title stored in the SVG.

    Returns:
        The size of the image in pixels (SVG: in its user units).

    Raises:
        ExportError: Unknown suffix, nothing to draw, or the file cannot be written.
    """
    from PySide6.QtCore import QRectF, QSize

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in IMAGE_FORMATS:
        raise ExportError(f"{path}: the image must end in .png or .svg, not {suffix or '(none)'}")
    rect = QRectF(source) if source is not None else QRectF(scene.sceneRect())
    if rect.isEmpty() or not scene.items():
        raise ExportError(f"{path}: there is nothing to draw (open a model first)")
    families = scene.families() if legend else []
    extra = legend_column_width(families)
    if suffix == ".png":
        side = max(rect.width() + extra, rect.height())
        scale = min(scale, MAX_PIXELS_SIDE / side)
    width = math.ceil((rect.width() + extra) * scale)
    height = math.ceil(max(rect.height(), legend_height(families) + 2 * LEGEND_PAD) * scale)
    size = QSize(width, height)
    if not path.parent.exists():
        raise ExportError(f"{path}: the folder {path.parent} does not exist")
    sketch_before = getattr(scene, "sketch_mode", None)
    if sketch_before is not None:  # the export has its own level of detail
        scene.set_sketch_mode(scene.sketch_for_scale(scale))
    try:
        return _write(scene, path, suffix, rect, size, scale, families, title)
    finally:
        if sketch_before is not None:
            scene.set_sketch_mode(sketch_before)


def _write(scene, path: Path, suffix: str, rect, size, scale: float, families, title: str):
    from PySide6.QtCore import QRectF
    from PySide6.QtGui import QImage, QPainter

    from cnnviz.ui import theme

    width, height = size.width(), size.height()
    if suffix == ".png":
        image = QImage(size, QImage.Format.Format_ARGB32_Premultiplied)
        image.fill(theme.colour(theme.BACKGROUND))
        painter = QPainter(image)
        _draw(painter, scene, rect, scale, families)
        painter.end()
        if not image.save(str(path), "PNG"):
            raise ExportError(f"{path}: could not write the PNG (is the folder writable?)")
        return size
    from PySide6.QtSvg import QSvgGenerator

    gen = QSvgGenerator()
    gen.setFileName(str(path))
    gen.setSize(size)
    gen.setViewBox(QRectF(0, 0, width, height))
    gen.setTitle(title or "cnnviz graph")
    gen.setDescription("Layer graph drawn by cnnviz")
    gen.setResolution(96)
    painter = QPainter()
    if not painter.begin(gen):
        raise ExportError(f"{path}: could not write the SVG (is the folder writable?)")
    painter.fillRect(QRectF(0, 0, width, height), theme.colour(theme.BACKGROUND))
    _draw(painter, scene, rect, scale, families)
    painter.end()
    if not path.is_file():
        raise ExportError(f"{path}: could not write the SVG (is the folder writable?)")
    return size


def _draw(painter: QPainter, scene, rect: QRectF, scale: float, families: list[str]) -> None:
    from PySide6.QtCore import QPointF, QRectF, Qt
    from PySide6.QtGui import QPainter

    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setRenderHint(QPainter.RenderHint.TextAntialiasing)
    target = QRectF(0, 0, rect.width() * scale, rect.height() * scale)
    scene.render(painter, target, rect, Qt.AspectRatioMode.IgnoreAspectRatio)
    if families:
        painter.save()
        painter.scale(scale, scale)
        paint_legend(painter, QPointF(rect.width() + LEGEND_PAD, LEGEND_PAD), families)
        painter.restore()


# --------------------------------------------------------------------------- command line
def configure_graph_command(p: argparse.ArgumentParser) -> None:
    """Arguments of ``cnnviz graph``."""
    from cnnviz.cli import _parse_shape

    p.add_argument(
        "source",
        help="zoo name (lenet5, resnet50, ...), torchvision:NAME, path/file.py:NAME "
        "or an architecture .json file",
    )
    p.add_argument("-o", "--output", required=True, help="image to write: out.png or out.svg")
    p.add_argument(
        "--depth",
        type=int,
        default=None,
        help="open groups down to depth N (0: every top-level group closed); "
        "default: everything open",
    )
    p.add_argument("--input", type=_parse_shape, default=None, help="input shape CxHxW")
    p.add_argument(
        "--size",
        choices=("original", "teaching"),
        default="original",
        help="zoo models: the paper's size or the small teaching size (default: original)",
    )
    p.add_argument(
        "--expand",
        action="append",
        default=[],
        metavar="GROUP",
        help="also open this group (repeatable), e.g. --depth 0 --expand inception3a",
    )
    p.add_argument(
        "--no-repeats", action="store_true", help='do not merge identical blocks into "xN"'
    )
    p.add_argument("--no-legend", action="store_true", help="leave out the legend")
    p.add_argument("--scale", type=float, default=1.0, help="pixels per unit for PNG (1.0)")


def run_graph_command(args: argparse.Namespace) -> int:
    """``cnnviz graph SOURCE -o FILE``: draw the layer graph into an image, with no window."""
    from cnnviz.core.analysis import analyse
    from cnnviz.core.layout import collapse_to_depth
    from cnnviz.core.sources import load_source
    from cnnviz.ui.graph_items import GraphScene, SceneState

    out = Path(args.output)
    if out.suffix.lower() not in IMAGE_FORMATS:
        raise ExportError(f"{out}: the image must end in .png or .svg")
    if args.scale <= 0:
        raise ExportError(f"--scale must be positive, not {args.scale}")
    app = _headless_app()
    graph = load_source(args.source, input_shape=args.input, size=args.size)
    analysis = analyse(graph)
    groups = set(graph.groups())
    unknown = [g for g in args.expand if g not in groups]
    if unknown:
        raise CnnvizError(f"{graph.name} has no group {', '.join(map(repr, unknown))}")
    collapsed = collapse_to_depth(graph, args.depth) if args.depth is not None else set()
    opened = set(args.expand)
    for g in args.expand:  # opening a group opens the groups around it too
        while "." in g:
            g = g.rsplit(".", 1)[0]
            opened.add(g)
    collapsed -= opened
    # a run merged into "xN" opens when one of its groups is asked for
    from cnnviz.core.layout import find_repeats

    unrolled = {run[0] for run in find_repeats(graph) if opened & set(run)}
    if args.depth is None:
        unrolled |= {run[0] for run in find_repeats(graph)}
    state = SceneState(
        frozenset(collapsed), frozenset(unrolled), repeat_collapse=not args.no_repeats
    )
    scene = GraphScene()
    scene.build(graph, analysis, state)
    size = export_scene(scene, out, scale=args.scale, legend=not args.no_legend, title=graph.name)
    print(f"{out}: {graph.name}, {len(scene.cards)} boxes, {size.width()}x{size.height()}")
    del scene, app
    return 0


def _headless_app():
    """The running QApplication, or a new one on the offscreen platform (no display needed)."""
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance()
    if app is None:
        if not os.environ.get("QT_QPA_PLATFORM"):
            os.environ["QT_QPA_PLATFORM"] = "offscreen"
        app = QApplication(sys.argv[:1])
    return app
