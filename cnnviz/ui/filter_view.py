"""The filter view: what the convolutions have learnt, drawn as their weights.

First-layer filters act on the image itself, so they are drawn as small images: colour tiles for
an RGB input, and for a grey input blue (negative) to red (positive) tiles. Early in training they
are noise; after some steps edge and stroke detectors appear: a band of red beside a band of
blue. Deeper convolutions are drawn per output channel (rows) across input channels (columns).
"""

from __future__ import annotations

import math

import numpy as np
from PySide6.QtCore import QRect, QSize, Qt, Slot
from PySide6.QtGui import QImage, QPainter, QPaintEvent
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QSizePolicy,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from cnnviz.core.probes import FilterSnapshot
from cnnviz.ui import colormaps

MAX_ROWS = 64
"""Output channels drawn for a deeper layer (more would be specks)."""
MAX_COLS = 64
"""Input channels drawn for a deeper layer."""
BACKGROUND = np.array([40, 40, 46], dtype=np.uint8)


def _symmetric(w: np.ndarray, axes: tuple[int, ...] | None) -> np.ndarray:
    """Per-group largest magnitude, so that zero is always the middle of the diverging map."""
    peak = np.abs(w).max(axis=axes, keepdims=axes is not None)
    return np.where(peak > 0, peak, 1.0)


def filter_tiles(snap: FilterSnapshot, per_filter: bool) -> tuple[np.ndarray, str]:
    """The filters as tiles ``(rows, cols, kH, kW, 3)`` uint8, and how they are drawn.

    First-layer filters on 3 channels are RGB images (each stretched to its own range); other
    first-layer filters are one tile per input channel; deeper layers are a matrix of output
    channels (rows) by input channels (columns), capped at ``MAX_ROWS`` x ``MAX_COLS``.
    """
    w = snap.weights
    c_out, c_in, kh, kw = w.shape
    if snap.first_layer and c_in == 3:
        axes = (1, 2, 3) if per_filter else None
        low = w.min(axis=axes, keepdims=axes is not None)
        high = w.max(axis=axes, keepdims=axes is not None)
        span = np.where(high - low > 0, high - low, 1.0)
        rgb = ((w - low) / span * 255 + 0.5).clip(0, 255).astype(np.uint8)
        tiles = rgb.transpose(0, 2, 3, 1)[None]  # one row of colour tiles
        return tiles, "colour: each filter as the RGB image that excites it most"
    if snap.first_layer:
        peak = _symmetric(w, (1, 2, 3) if per_filter else None)
        tiles = colormaps.apply(w / peak, colormaps.DIVERGING, -1.0, 1.0)  # (out, in, kh, kw, 3)
        tiles = tiles.transpose(1, 0, 2, 3, 4)  # input channels as rows, filters across
        return tiles, "blue negative · white zero · red positive"
    shown = w[:MAX_ROWS, :MAX_COLS]
    peak = _symmetric(shown, (1, 2, 3) if per_filter else None)
    tiles = colormaps.apply(shown / peak, colormaps.DIVERGING, -1.0, 1.0)
    note = "rows: output channels · columns: input channels"
    if c_out > MAX_ROWS or c_in > MAX_COLS:
        note += f" (first {min(c_out, MAX_ROWS)} × {min(c_in, MAX_COLS)} shown)"
    return tiles, note


def mosaic(tiles: np.ndarray, wrap: int | None = None) -> np.ndarray:
    """Tiles ``(rows, cols, h, w, 3)`` laid out with one-pixel gaps: ``(H, W, 3)`` uint8.

    With ``wrap``, a single row of tiles is folded into rows of at most ``wrap`` tiles.
    """
    rows, cols, h, w, _ = tiles.shape
    if wrap and rows == 1 and cols > wrap:
        new_rows = math.ceil(cols / wrap)
        padded = np.zeros((new_rows * wrap, h, w, 3), dtype=np.uint8)
        padded[:] = BACKGROUND
        padded[:cols] = tiles[0]
        tiles = padded.reshape(new_rows, wrap, h, w, 3)
        rows, cols = new_rows, wrap
    framed = np.empty((rows, cols, h + 1, w + 1, 3), dtype=np.uint8)
    framed[:] = BACKGROUND
    framed[:, :, :h, :w] = tiles
    body = framed.transpose(0, 2, 1, 3, 4).reshape(rows * (h + 1), cols * (w + 1), 3)
    out = np.empty((rows * (h + 1) + 1, cols * (w + 1) + 1, 3), dtype=np.uint8)
    out[:] = BACKGROUND
    out[1:, 1:] = body
    return out


class MosaicWidget(QWidget):
    """An image drawn as large as it fits, in whole-pixel steps, without smoothing."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.image: QImage | None = None
        self.setMinimumSize(80, 60)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

    def set_image(self, rgb: np.ndarray | None) -> None:
        """Show ``rgb`` (``(H, W, 3)`` uint8), or nothing."""
        self.image = None if rgb is None else colormaps.qimage(rgb)
        self.update()

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt's name
        return QSize(260, 200)

    def image_rect(self) -> QRect:
        """Where the image is drawn."""
        if self.image is None:
            return QRect()
        w, h = self.image.width(), self.image.height()
        scale = min(self.width() / w, self.height() / h)
        if scale >= 1:
            scale = math.floor(scale)
        dw, dh = int(w * scale), int(h * scale)
        return QRect((self.width() - dw) // 2, (self.height() - dh) // 2, dw, dh)

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 - Qt's name
        if self.image is None:
            return
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, False)
        p.drawImage(self.image_rect(), self.image)
        p.end()


class _FilterPane(QWidget):
    def __init__(self, title: str) -> None:
        super().__init__()
        self.heading = QLabel(title)
        self.heading.setTextFormat(Qt.TextFormat.RichText)
        self.mosaic = MosaicWidget()
        self.note = QLabel("")
        self.note.setStyleSheet("color: gray")
        self.note.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addWidget(self.heading)
        layout.addWidget(self.mosaic, 1)
        layout.addWidget(self.note)


class FilterView(QWidget):
    """First-layer filters beside the filters of the convolution behind the selected layer."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.first: FilterSnapshot | None = None
        self.selected: FilterSnapshot | None = None
        self._stale = False
        self.scaling = QComboBox()
        self.scaling.addItems(["per filter", "shared"])
        self.scaling.setToolTip(
            "per filter: each filter uses the whole colour range (shows its pattern early in "
            "training); shared: one range per layer (shows which filters are strong)"
        )
        self.first_pane = _FilterPane("First layer")
        self.selected_pane = _FilterPane("Selected layer")
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(self.first_pane)
        self.splitter.addWidget(self.selected_pane)
        top = QHBoxLayout()
        top.setContentsMargins(0, 0, 0, 0)
        self.title = QLabel("Filters: the weights each convolution has learnt.")
        top.addWidget(self.title, 1)
        top.addWidget(QLabel("Scale"))
        top.addWidget(self.scaling)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(top)
        layout.addWidget(self.splitter, 1)
        self.scaling.currentTextChanged.connect(self._on_scaling_changed)

    def set_filters(
        self, first: FilterSnapshot | None, selected: FilterSnapshot | None = None
    ) -> None:
        """Show the first layer's filters and those of the selected layer's convolution."""
        self.first = first
        self.selected = selected
        # Drawing the filters of a deep layer costs milliseconds; a hidden tab waits.
        if self.isVisible():
            self._refresh()
        else:
            self._stale = True

    def showEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().showEvent(event)
        if self._stale:
            self._refresh()

    def _refresh(self) -> None:
        self._stale = False
        per_filter = self.scaling.currentText() == "per filter"
        self._fill(self.first_pane, self.first, per_filter, "The network has no convolution.")
        same = self.selected is None or (
            self.first is not None and self.selected.layer == self.first.layer
        )
        self.selected_pane.setVisible(not same)
        if not same:
            self._fill(self.selected_pane, self.selected, per_filter, "")

    def _fill(
        self, pane: _FilterPane, snap: FilterSnapshot | None, per_filter: bool, empty: str
    ) -> None:
        if snap is None:
            pane.heading.setText(empty)
            pane.mosaic.set_image(None)
            pane.note.setText("")
            return
        c_out, c_in, kh, kw = snap.weights.shape
        tiles, note = filter_tiles(snap, per_filter)
        wrap = None
        if tiles.shape[0] == 1:
            # The dock is wide and low: a row of up to 16 filters, else a wide block.
            n = tiles.shape[1]
            wrap = n if n <= 16 else max(1, math.ceil(math.sqrt(n * 3)))
        pane.mosaic.set_image(mosaic(tiles, wrap))
        step = f" &nbsp; <span style='color:gray'>step {snap.step}</span>" if snap.step else ""
        pane.heading.setText(
            f"<b>{snap.layer}</b>: {c_out} filters of {kh}×{kw} on {c_in * snap.groups} "
            f"channel{'s' if c_in * snap.groups != 1 else ''}{step}"
        )
        pane.note.setText(note)

    @Slot(str)
    def _on_scaling_changed(self, _text: str) -> None:
        self._refresh()


__all__ = ["FilterView", "MosaicWidget", "filter_tiles", "mosaic"]
