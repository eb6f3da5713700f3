"""Why did the network decide that: Grad-CAM and saliency, and where it goes wrong.

:class:`CamView` shows, for each probe image, the image, its Grad-CAM heat map laid over it (the
regions of the last feature map that raise the class score) and its saliency map (how much each
input pixel changes the score). :class:`ErrorsView` shows the confusion matrix of the validation
split and a gallery of the images it got wrong, most confident mistakes first.
"""

from __future__ import annotations

import math

import numpy as np
from PySide6.QtCore import QRect, QRectF, QSize, Qt, Signal, Slot
from PySide6.QtGui import QColor, QFont, QImage, QPainter, QPaintEvent
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from cnnviz.core.probes import CamResult, ConfusionResult
from cnnviz.ui import colormaps

RIGHT = QColor(90, 200, 120)
WRONG = QColor(230, 80, 80)


def _short(name: str, limit: int = 12) -> str:
    return name if len(name) <= limit else name[: limit - 1] + "…"


def cam_overlay(image: np.ndarray, cam: np.ndarray) -> np.ndarray:
    """``cam`` (``(H, W)`` in [0, 1]) in magma over ``image``, more opaque where it is high."""
    heat = colormaps.apply(cam, colormaps.MAGMA, 0.0, 1.0)
    return colormaps.blend(colormaps.as_rgb(image), heat, 0.25 + 0.6 * cam)


class CamGrid(QWidget):
    """One column per probe image: the image, Grad-CAM over it, saliency, and a caption."""

    ROWS = ("image", "Grad-CAM", "saliency")

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.result: CamResult | None = None
        self._images: list[list[QImage]] = []
        self.setMinimumHeight(160)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

    def set_result(self, result: CamResult | None) -> None:
        """Show ``result`` (None clears)."""
        self.result = result
        self._images = []
        if result is not None:
            for n in range(result.images.shape[0]):
                image = result.images[n]
                self._images.append(
                    [
                        colormaps.qimage(colormaps.as_rgb(image)),
                        colormaps.qimage(cam_overlay(image, result.cam[n])),
                        colormaps.qimage(
                            colormaps.apply(result.saliency[n], colormaps.VIRIDIS, 0.0, 1.0)
                        ),
                    ]
                )
        self.update()

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt's name
        return QSize(700, 260)

    def cell_size(self) -> int:
        """Side of one picture."""
        n = max(1, len(self._images))
        label_w = 64
        by_width = (self.width() - label_w) / n - 6
        by_height = (self.height() - 40) / 3 - 4
        return max(16, int(min(by_width, by_height, 128)))

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 - Qt's name
        r = self.result
        if r is None:
            return
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, False)
        fg = self.palette().color(self.foregroundRole())
        font = QFont(self.font())
        font.setPointSizeF(max(6.5, font.pointSizeF() * 0.8))
        p.setFont(font)
        side = self.cell_size()
        label_w = 64
        for row, name in enumerate(self.ROWS):
            p.setPen(fg)
            p.drawText(
                QRect(0, row * (side + 4), label_w - 4, side),
                Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter,
                name,
            )
        caption_y = 3 * (side + 4)
        right = Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
        p.drawText(QRect(0, caption_y, label_w - 4, 14), right, "true")
        p.drawText(QRect(0, caption_y + 13, label_w - 4, 14), right, "predicted")
        for n, pictures in enumerate(self._images):
            x = label_w + n * (side + 6)
            for row, image in enumerate(pictures):
                p.drawImage(QRect(x, row * (side + 4), side, side), image)
            pred = int(r.predicted[n])
            true = int(r.labels[n])
            prob = float(r.probabilities[n, pred])
            caption_y = 3 * (side + 4)
            p.setPen(fg)
            limit = max(4, side // 6)
            true_text = _short(r.classes[true], limit) if 0 <= true < len(r.classes) else "?"
            p.drawText(
                QRect(x - 3, caption_y, side + 6, 14), Qt.AlignmentFlag.AlignCenter, true_text
            )
            p.setPen(RIGHT if pred == true else WRONG)
            p.drawText(
                QRect(x - 3, caption_y + 13, side + 6, 14),
                Qt.AlignmentFlag.AlignCenter,
                f"{_short(r.classes[pred], max(3, limit - 4))} {prob * 100:.0f}%",
            )
        p.end()


class CamView(QWidget):
    """Grad-CAM and saliency of the probe images, for the predicted class or a chosen one.

    Signals:
        sig_class_changed(class_index): the class to explain; -1 for each image's prediction.
    """

    sig_class_changed = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.title = QLabel("Grad-CAM: where the last feature map finds evidence for a class.")
        self.title.setTextFormat(Qt.TextFormat.RichText)
        self.title.setWordWrap(True)
        self.class_box = QComboBox()
        self.class_box.addItem("predicted class", -1)
        self.grid = CamGrid()
        top = QHBoxLayout()
        top.setContentsMargins(0, 0, 0, 0)
        top.addWidget(self.title, 1)
        top.addWidget(QLabel("Explain"))
        top.addWidget(self.class_box)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(top)
        layout.addWidget(self.grid, 1)
        self.class_box.currentIndexChanged.connect(self._on_class_box_changed)

    def set_classes(self, classes: tuple[str, ...]) -> None:
        """Offer ``classes`` in the class chooser (keeps "predicted class" first)."""
        self.class_box.blockSignals(True)
        self.class_box.clear()
        self.class_box.addItem("predicted class", -1)
        for i, name in enumerate(classes):
            self.class_box.addItem(name, i)
        self.class_box.blockSignals(False)

    @property
    def class_index(self) -> int | None:
        """The chosen class, or None for each image's prediction."""
        value = self.class_box.currentData()
        return None if value is None or value < 0 else int(value)

    def set_result(self, result: CamResult | None) -> None:
        """Show ``result`` (None clears)."""
        self.grid.set_result(result)
        if result is not None:
            which = (
                "each image's predicted class"
                if self.class_index is None
                else f"class <b>{result.classes[self.class_index]}</b>"
            )
            self.title.setText(
                f"Grad-CAM of <b>{result.layer}</b> and saliency for {which}. "
                "<span style='color:gray'>Bright: raises the score.</span>"
            )

    def set_message(self, text: str) -> None:
        """Show ``text`` instead of a result."""
        self.grid.set_result(None)
        self.title.setText(text)

    @Slot(int)
    def _on_class_box_changed(self, _index: int) -> None:
        value = self.class_box.currentData()
        self.sig_class_changed.emit(-1 if value is None else int(value))


class ConfusionMatrixWidget(QWidget):
    """Counts of (true, predicted) as coloured cells; the diagonal is what it got right."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.result: ConfusionResult | None = None
        self.setMinimumSize(200, 160)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt's name
        return QSize(320, 260)

    def set_result(self, result: ConfusionResult | None) -> None:
        """Show ``result`` (None clears)."""
        self.result = result
        self.update()

    def geometry_for(self, k: int) -> tuple[float, float, float]:
        """Left and top of the matrix and the side of one cell."""
        label_w = min(110.0, self.width() * 0.3)
        top = 16.0
        side = max(6.0, min((self.width() - label_w - 4) / k, (self.height() - top - 22) / k))
        return label_w, top, side

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 - Qt's name
        r = self.result
        if r is None:
            return
        k = r.matrix.shape[0]
        p = QPainter(self)
        fg = self.palette().color(self.foregroundRole())
        font = QFont(self.font())
        font.setPointSizeF(max(6.0, font.pointSizeF() * 0.75))
        p.setFont(font)
        left, top, side = self.geometry_for(k)
        row_totals = r.matrix.sum(1, keepdims=True)
        share = r.matrix / np.where(row_totals > 0, row_totals, 1)
        colours = colormaps.apply(share, colormaps.VIRIDIS, 0.0, 1.0)
        p.setPen(fg)
        p.drawText(QRectF(left, 0, k * side, 14), Qt.AlignmentFlag.AlignCenter, "predicted class →")
        for i in range(k):
            p.setPen(fg)
            p.drawText(
                QRectF(0, top + i * side, left - 4, side),
                Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter,
                _short(r.classes[i], 16),
            )
            p.drawText(
                QRectF(left + i * side, top + k * side + 2, side, 14),
                Qt.AlignmentFlag.AlignCenter,
                str(i) if side < 40 else _short(r.classes[i], 6),
            )
            for j in range(k):
                cell = QRectF(left + j * side, top + i * side, side - 1, side - 1)
                c = colours[i, j]
                p.fillRect(cell, QColor(int(c[0]), int(c[1]), int(c[2])))
                if side >= 16 and r.matrix[i, j]:
                    light = share[i, j] > 0.6
                    p.setPen(QColor(20, 20, 20) if light else QColor(235, 235, 235))
                    p.drawText(cell, Qt.AlignmentFlag.AlignCenter, str(int(r.matrix[i, j])))
        p.end()


class Gallery(QWidget):
    """Thumbnails of misclassified images with "true → predicted (confidence)"."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.result: ConfusionResult | None = None
        self._images: list[QImage] = []
        self.setMinimumSize(200, 120)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

    def set_result(self, result: ConfusionResult | None) -> None:
        """Show the mistakes of ``result`` (None clears)."""
        self.result = result
        self._images = (
            []
            if result is None
            else [colormaps.qimage(colormaps.as_rgb(im)) for im in result.images]
        )
        self.update()

    def layout_cells(self) -> tuple[int, int]:
        """Columns and the side of one thumbnail."""
        n = max(1, len(self._images))
        best = (1, 24)
        for side in range(96, 23, -4):
            cols = max(1, self.width() // (side + 8))
            if math.ceil(n / cols) * (side + 30) <= self.height():
                return cols, side
            best = (cols, side)
        return best

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 - Qt's name
        r = self.result
        p = QPainter(self)
        fg = self.palette().color(self.foregroundRole())
        if r is None or not self._images:
            if r is not None:
                p.setPen(fg)
                p.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, "No mistakes.")
            p.end()
            return
        p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, False)
        font = QFont(self.font())
        font.setPointSizeF(max(6.0, font.pointSizeF() * 0.72))
        p.setFont(font)
        cols, side = self.layout_cells()
        for i, image in enumerate(self._images):
            row, col = divmod(i, cols)
            x, y = col * (side + 8) + 4, row * (side + 30)
            p.drawImage(QRect(x, y, side, side), image)
            p.setPen(fg)
            p.drawText(
                QRect(x - 4, y + side, side + 8, 13),
                Qt.AlignmentFlag.AlignCenter,
                _short(r.classes[int(r.true[i])], max(4, side // 6)),
            )
            p.setPen(WRONG)
            p.drawText(
                QRect(x - 4, y + side + 12, side + 8, 13),
                Qt.AlignmentFlag.AlignCenter,
                f"{_short(r.classes[int(r.predicted[i])], max(3, side // 6 - 4))} "
                f"{r.confidence[i] * 100:.0f}%",
            )
        p.end()


class ErrorsView(QWidget):
    """The confusion matrix of the validation split beside the images it got wrong.

    Signals:
        sig_compute_requested(): the user asked for the matrix (it costs a pass over the split).
    """

    sig_compute_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.title = QLabel("Confusion matrix and misclassified validation images.")
        self.title.setTextFormat(Qt.TextFormat.RichText)
        self.compute = QPushButton("Evaluate")
        self.compute.setToolTip("Run the model over the validation split")
        self.matrix = ConfusionMatrixWidget()
        self.gallery = Gallery()
        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(self.matrix)
        splitter.addWidget(self.gallery)
        splitter.setStretchFactor(1, 2)
        top = QHBoxLayout()
        top.setContentsMargins(0, 0, 0, 0)
        top.addWidget(self.title, 1)
        top.addWidget(self.compute)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(top)
        layout.addWidget(splitter, 1)
        self.compute.clicked.connect(self.sig_compute_requested)

    def set_result(self, result: ConfusionResult | None) -> None:
        """Show ``result`` (None clears)."""
        self.matrix.set_result(result)
        self.gallery.set_result(result)
        if result is not None:
            wrong = result.total - int(np.trace(result.matrix))
            step = f", step {result.step}" if result.step else ""
            self.title.setText(
                f"<b>{result.split}</b> split: {result.total} images, accuracy "
                f"<b>{result.accuracy * 100:.1f}%</b>, {wrong} wrong{step}. "
                "<span style='color:gray'>Rows: true class; columns: predicted.</span>"
            )

    def set_message(self, text: str) -> None:
        """Show ``text`` instead of a result."""
        self.set_result(None)
        self.title.setText(text)
