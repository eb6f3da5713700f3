"""Exporting the graph: a PNG that loads back at the stated size, an SVG whose labels are text."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET

import pytest
from PySide6.QtCore import QPointF
from PySide6.QtGui import QColor, QImage, QPainter

from cnnviz.core.analysis import analyse
from cnnviz.core.sources import load_source
from cnnviz.ui import theme
from cnnviz.ui.graph_export import ExportError, legend_column_width
from cnnviz.ui.graph_view import GraphView

SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture
def lenet_view(qtbot) -> GraphView:
    g = load_source("lenet5")
    view = GraphView()
    qtbot.addWidget(view)
    view.resize(800, 600)
    view.show()
    qtbot.waitExposed(view)
    view.set_model(g, analyse(g))
    return view


def test_png_of_the_whole_graph(lenet_view, tmp_path):
    path = tmp_path / "lenet.png"
    size = lenet_view.export_image(str(path))
    rect = lenet_view.graph_scene.sceneRect()
    image = QImage(str(path))
    assert not image.isNull()
    assert (image.width(), image.height()) == (size.width(), size.height())
    families = lenet_view.graph_scene.families()
    assert image.width() == math.ceil(rect.width() + legend_column_width(families))
    assert image.height() == math.ceil(rect.height())
    # the card of c1 is drawn in the convolution colour, at its place
    c1 = lenet_view.graph_scene.cards["features.c1"].item
    colour = image.pixelColor(int(c1.x + 6), int(c1.y + c1.height - 5))
    assert colour.name() == QColor(theme.FAMILIES["convolution"].fill).name()
    # and it is not a blank page: many pixels are not the background
    step = 7
    inked = sum(
        image.pixelColor(x, y).name() != "#ffffff"
        for x in range(0, image.width(), step)
        for y in range(0, image.height(), step)
    )
    assert inked > 0.1 * (image.width() // step) * (image.height() // step)


def test_png_of_the_visible_part(lenet_view, tmp_path):
    lenet_view.set_zoom(2.0)
    path = tmp_path / "part.png"
    size = lenet_view.export_image(str(path), visible_only=True)
    image = QImage(str(path))
    assert (image.width(), image.height()) == (size.width(), size.height())
    # what is on screen (the part of the drawing in the viewport), at the zoom on screen
    seen = lenet_view.mapToScene(lenet_view.viewport().rect()).boundingRect()
    part = seen.intersected(lenet_view.graph_scene.sceneRect())
    assert part.height() < lenet_view.graph_scene.sceneRect().height() / 2
    assert abs(image.width() - 2 * part.width()) <= 2
    assert abs(image.height() - 2 * part.height()) <= 2


def test_svg_keeps_the_labels_as_text(lenet_view, tmp_path):
    path = tmp_path / "lenet.svg"
    lenet_view.export_image(str(path))
    root = ET.parse(path).getroot()
    assert root.tag == f"{SVG}svg"
    texts = {"".join(t.itertext()).strip() for t in root.iter(f"{SVG}text")}
    for label in ("c1", "s2", "f6", "output", "5×5 conv, 6", "6×28×28", "Layer families"):
        assert label in texts, label
    assert not any(el.tag == f"{SVG}image" for el in root.iter())  # no text turned into pixels


def test_a_zoomed_out_view_still_exports_full_detail(lenet_view, tmp_path):
    lenet_view.set_zoom(0.1)
    assert lenet_view.graph_scene.sketch_mode
    path = tmp_path / "lenet.svg"
    lenet_view.export_image(str(path))
    texts = {"".join(t.itertext()).strip() for t in ET.parse(path).getroot().iter(f"{SVG}text")}
    assert "c1" in texts
    assert lenet_view.graph_scene.sketch_mode  # and the view is left as it was


def test_bad_names_are_refused_with_a_message(lenet_view, tmp_path):
    with pytest.raises(ExportError, match=r"\.png or \.svg"):
        lenet_view.export_image(str(tmp_path / "x.jpg"))
    with pytest.raises(ExportError, match="does not exist"):
        lenet_view.export_image(str(tmp_path / "missing" / "x.png"))
    empty = GraphView()
    with pytest.raises(ExportError, match="nothing to draw"):
        empty.export_image(str(tmp_path / "x.png"))
    empty.deleteLater()


def test_the_legend_text_stays_inside_its_box(tmp_path):
    """The longest family label ("linear (fully connected)") does not run into the border."""
    from cnnviz.ui.graph_export import LEGEND_PAD, LEGEND_ROW, legend_box_width, paint_legend

    families = ["convolution", "linear", "merge", "normalisation"]
    width = legend_box_width(families)
    image = QImage(int(width) + 40, 200, QImage.Format.Format_RGB32)
    image.fill(QColor("#ffffff"))
    painter = QPainter(image)
    paint_legend(painter, QPointF(10, 10), families)
    painter.end()
    right = 10 + width  # the box's right border
    for y in range(200):  # nothing right of the border
        for x in range(int(right) + 2, image.width()):
            assert image.pixelColor(x, y).name() == "#ffffff", (x, y)
    for i in range(len(families) + 1):  # the title and each label row: the inside edge is white
        top = 10 + LEGEND_PAD + i * LEGEND_ROW
        for y in range(int(top), int(top + LEGEND_ROW - 4)):
            for x in range(int(right) - 6, int(right) - 2):
                assert image.pixelColor(x, y).name() == "#ffffff", (families, x, y)
