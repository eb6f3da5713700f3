"""The receptive-field view: which part of the image one unit looks at.

Left: the probe image with the unit's *theoretical* receptive field (from the analysis) as a
box; where the box reaches past the border it is drawn on the padding around the image, since
those inputs are the zeros the convolutions padded with. Middle: the *effective* receptive field,
the gradient of the unit with respect to each input pixel: usually a blob much smaller than the
box, brightest in its centre. Right: the receptive-field size of every layer by depth.
"""

from __future__ import annotations

import math

import numpy as np
from PySide6.QtCore import QPointF, QRectF, QSize, Qt
from PySide6.QtGui import QBrush, QColor, QFont, QPainter, QPainterPath, QPaintEvent, QPen
from PySide6.QtWidgets import QHBoxLayout, QLabel, QSizePolicy, QVBoxLayout, QWidget

from cnnviz.core.probes import ReceptiveFieldResult, RFDepthPoint
from cnnviz.ui import colormaps

BOX_COLOUR = QColor(255, 200, 40)
EFFECTIVE_COLOUR = QColor(80, 220, 255)
PADDING_COLOUR = QColor(70, 70, 80)


class _PixelCanvas(QWidget):
    """Draws an image on a pixel grid that may extend past the image (the padding)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setMinimumSize(110, 110)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.result: ReceptiveFieldResult | None = None
        self.image = None
        self._extent = (0.0, 0.0, 1.0, 1.0)  # top, left, bottom, right in input pixels

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt's name
        return QSize(200, 200)

    def _transform(self) -> tuple[float, float, float]:
        """Scale and offset mapping input pixel coordinates to widget coordinates."""
        top, left, bottom, right = self._extent
        w, h = right - left, bottom - top
        scale = min((self.width() - 4) / w, (self.height() - 4) / h)
        if scale >= 2:
            scale = math.floor(scale)
        ox = (self.width() - w * scale) / 2 - left * scale
        oy = (self.height() - h * scale) / 2 - top * scale
        return scale, ox, oy

    def pixel_rect(self, top: float, left: float, bottom: float, right: float) -> QRectF:
        """Widget rectangle covering input pixels ``top..bottom`` x ``left..right`` (inclusive)."""
        s, ox, oy = self._transform()
        return QRectF(ox + left * s, oy + top * s, (right - left + 1) * s, (bottom - top + 1) * s)


class RFImageWidget(_PixelCanvas):
    """The probe image, its padding, and the theoretical box of the clicked unit."""

    def set_result(self, result: ReceptiveFieldResult | None) -> None:
        """Show ``result`` (None clears)."""
        self.result = result
        if result is None:
            self.image = None
            self.update()
            return
        self.image = colormaps.qimage(colormaps.as_rgb(result.image))
        h, w = result.image.shape[:2]
        top, left, bottom, right = result.box
        margin = 1.0
        self._extent = (
            min(0.0, top) - margin,
            min(0.0, left) - margin,
            max(float(h), bottom + 1) + margin,
            max(float(w), right + 1) + margin,
        )
        self.update()

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 - Qt's name
        r = self.result
        if r is None or self.image is None:
            return
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, False)
        h, w = r.image.shape[:2]
        top, left, bottom, right = r.box
        # The padding the box reaches into, as a hatched frame around the image.
        outer = self.pixel_rect(min(0, top), min(0, left), max(h - 1, bottom), max(w - 1, right))
        inner = self.pixel_rect(0, 0, h - 1, w - 1)
        if outer != inner:
            p.fillRect(outer, QBrush(PADDING_COLOUR, Qt.BrushStyle.Dense6Pattern))
            p.setPen(QPen(PADDING_COLOUR.lighter(150), 1, Qt.PenStyle.DotLine))
            p.drawRect(outer)
        p.drawImage(inner, self.image)
        box = self.pixel_rect(top, left, bottom, right)
        p.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        p.setPen(QPen(BOX_COLOUR, 2))
        p.drawRect(box)
        if not r.global_field:
            centre = box.center()
            p.setPen(QPen(BOX_COLOUR, 1.5))
            p.drawLine(centre - QPointF(5, 0), centre + QPointF(5, 0))
            p.drawLine(centre - QPointF(0, 5), centre + QPointF(0, 5))
        p.end()


class ERFHeatmapWidget(_PixelCanvas):
    """The gradient of the unit with respect to the input, with both boxes outlined."""

    def set_result(self, result: ReceptiveFieldResult | None) -> None:
        """Show ``result`` (None clears)."""
        self.result = result
        if result is None:
            self.image = None
        else:
            heat = result.heatmap
            peak = float(heat.max())
            # A square root lifts the faint rim of the gradient blob into view.
            scaled = np.sqrt(heat / peak) if peak > 0 else heat
            self.image = colormaps.qimage(colormaps.apply(scaled, colormaps.MAGMA, 0.0, 1.0))
            h, w = heat.shape
            self._extent = (-0.5, -0.5, h + 0.5, w + 0.5)
        self.update()

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 - Qt's name
        r = self.result
        if r is None or self.image is None:
            return
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, False)
        h, w = r.heatmap.shape
        p.drawImage(self.pixel_rect(0, 0, h - 1, w - 1), self.image)
        top, left, bottom, right = r.box
        clipped = (max(0, top), max(0, left), min(h - 1, bottom), min(w - 1, right))
        p.setPen(QPen(BOX_COLOUR, 1.5, Qt.PenStyle.DashLine))
        p.drawRect(self.pixel_rect(*clipped))
        if r.effective_box is not None:
            p.setPen(QPen(EFFECTIVE_COLOUR, 1.5))
            p.drawRect(self.pixel_rect(*r.effective_box))
        p.end()


class RFDepthChart(QWidget):
    """Receptive-field size of each layer, in input pixels, against its depth."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.points: list[RFDepthPoint] = []
        self.input_size = 0
        self.selected = ""
        self.setMinimumSize(180, 110)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt's name
        return QSize(300, 200)

    def set_points(self, points: list[RFDepthPoint], input_size: int) -> None:
        """Chart ``points``; ``input_size`` is drawn as a line (the field covers the image)."""
        self.points = points
        self.input_size = input_size
        self.update()

    def set_selected(self, name: str) -> None:
        """Mark the layer ``name``."""
        self.selected = name
        self.update()

    def _plot_rect(self) -> QRectF:
        return QRectF(34, 8, max(10, self.width() - 44), max(10, self.height() - 30))

    def point_position(self, index: int) -> QPointF:
        """Widget position of point ``index``."""
        rect = self._plot_rect()
        top = max([p.size for p in self.points] + [self.input_size, 1]) * 1.08
        n = max(1, len(self.points) - 1)
        x = rect.left() + rect.width() * index / n
        y = rect.bottom() - rect.height() * self.points[index].size / top
        return QPointF(x, y)

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 - Qt's name
        if not self.points:
            return
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        fg = self.palette().color(self.foregroundRole())
        rect = self._plot_rect()
        font = QFont(self.font())
        font.setPointSizeF(max(6.5, font.pointSizeF() * 0.75))
        p.setFont(font)
        top = max([pt.size for pt in self.points] + [self.input_size, 1]) * 1.08
        p.setPen(QPen(fg, 1))
        p.drawLine(rect.bottomLeft(), rect.bottomRight())
        p.drawLine(rect.bottomLeft(), rect.topLeft())
        for tick in _ticks(top):
            y = rect.bottom() - rect.height() * tick / top
            p.drawText(QRectF(0, y - 7, 30, 14), Qt.AlignmentFlag.AlignRight, f"{tick:g}")
        if self.input_size:
            y = rect.bottom() - rect.height() * self.input_size / top
            p.setPen(QPen(QColor(150, 150, 150), 1, Qt.PenStyle.DashLine))
            p.drawLine(QPointF(rect.left(), y), QPointF(rect.right(), y))
            p.drawText(
                QRectF(rect.left() + 4, y - 15, rect.width() - 8, 14),
                Qt.AlignmentFlag.AlignLeft,
                f"image {self.input_size} px",
            )
        path = QPainterPath(self.point_position(0))
        for i in range(1, len(self.points)):
            path.lineTo(self.point_position(i))
        p.setPen(QPen(QColor(90, 160, 255), 2))
        p.drawPath(path)
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(QColor(90, 160, 255))
        for i, pt in enumerate(self.points):
            if pt.kind.startswith(("conv", "max_pool", "avg_pool")):
                p.drawEllipse(self.point_position(i), 2.5, 2.5)
        for i, pt in enumerate(self.points):
            if pt.name == self.selected:
                pos = self.point_position(i)
                p.setBrush(BOX_COLOUR)
                p.drawEllipse(pos, 5, 5)
                p.setPen(QPen(fg))
                label = f"{pt.name}: {pt.size:g} px"
                right = pos.x() > rect.center().x()
                box = QRectF(pos.x() - 200 - 8 if right else pos.x() + 8, pos.y() - 16, 200, 14)
                align = Qt.AlignmentFlag.AlignRight if right else Qt.AlignmentFlag.AlignLeft
                p.drawText(box, align, label)
        p.setPen(QPen(fg))
        p.drawText(
            QRectF(rect.left(), rect.bottom() + 4, rect.width(), 14),
            Qt.AlignmentFlag.AlignCenter,
            "depth (layers with a local field) →",
        )
        p.end()


def _ticks(top: float) -> list[float]:
    step = 10 ** math.floor(math.log10(max(top, 1) / 2))
    for mult in (1, 2, 5, 10):
        if top / (step * mult) <= 5:
            step *= mult
            break
    return [step * i for i in range(0, int(top / step) + 1)]


class ReceptiveFieldView(QWidget):
    """Theoretical box on the image, effective field beside it, and field size by depth."""

    def __init__(self, parent: QWidget | None = None, show_chart: bool = True) -> None:
        super().__init__(parent)
        self.result: ReceptiveFieldResult | None = None
        self.image_view = RFImageWidget()
        self.heatmap_view = ERFHeatmapWidget()
        self.chart = RFDepthChart()
        self.caption = QLabel("Click a unit of an enlarged activation map.")
        self.caption.setWordWrap(True)
        self.caption.setTextFormat(Qt.TextFormat.RichText)
        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        for title, widget in (
            ("<b>theoretical field</b> <span style='color:#ffc828'>■</span>", self.image_view),
            (
                "<b>effective field</b> |∂unit/∂pixel| <span style='color:#50dcff'>■</span>",
                self.heatmap_view,
            ),
        ):
            column = QVBoxLayout()
            label = QLabel(title)
            label.setTextFormat(Qt.TextFormat.RichText)
            column.addWidget(label)
            column.addWidget(widget, 1)
            row.addLayout(column, 1)
        chart_column = QVBoxLayout()
        chart_column.addWidget(QLabel("<b>receptive field by depth</b> (px)"))
        chart_column.addWidget(self.chart, 1)
        self.chart_box = QWidget()
        self.chart_box.setLayout(chart_column)
        chart_column.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.chart_box, 1)
        self.chart_box.setVisible(show_chart)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(row, 1)
        layout.addWidget(self.caption)

    def set_result(self, result: ReceptiveFieldResult | None) -> None:
        """Show the fields of one unit (None clears)."""
        self.result = result
        self.image_view.set_result(result)
        self.heatmap_view.set_result(result)
        if result is None:
            self.caption.setText("Click a unit of an enlarged activation map.")
            return
        self.chart.set_selected(result.layer)
        top, left, bottom, right = result.box
        y, x = result.unit
        if result.global_field:
            where = "sees the <b>whole image</b> (global pooling or a linear layer mixed it)"
        else:
            h, w = result.image.shape[:2]
            size = f"{bottom - top + 1:g}×{right - left + 1:g}"
            outside = top < 0 or left < 0 or bottom > h - 1 or right > w - 1
            where = (
                f"theoretical field {size} px: rows {top:g}…{bottom:g}, columns {left:g}…{right:g}"
                + (" (partly in the zero padding)" if outside else "")
            )
        if result.effective_box is not None:
            et, el, eb, er = result.effective_box
            eff = f"; gradient non-zero on {eb - et + 1}×{er - el + 1} px"
        else:
            eff = "; its gradient is zero here (a ReLU that is off lets nothing through)"
        self.caption.setText(
            f"<b>{result.layer}</b>, channel {result.channel}, unit (y {y}, x {x}) = "
            f"{result.value:.3g}: {where}{eff}."
        )

    def set_depth(self, points: list[RFDepthPoint], input_size: int) -> None:
        """Chart the receptive-field size by depth for the whole network."""
        self.chart.set_points(points, input_size)

    def set_selected_layer(self, name: str) -> None:
        """Mark ``name`` on the chart."""
        self.chart.set_selected(name)
