"""The activation view: a layer's channels for one probe image, as a grid of colour maps.

Each tile is one channel of the selected layer for the chosen probe image, coloured with a
perceptual map (viridis by default) and drawn with crisp, nearest-neighbour pixels. Under each
tile: the channel's mean over the probe batch and its share of zeros (a channel that is zero for
every image and position is a dead ReLU, marked in red). A click enlarges a channel; in the
enlarged map a click on a unit asks for its receptive field.
"""

from __future__ import annotations

import math

import numpy as np
from PySide6.QtCore import QPoint, QRect, QSize, Qt, Signal, Slot
from PySide6.QtGui import QColor, QFont, QImage, QMouseEvent, QPainter, QPaintEvent, QPen
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QScrollArea,
    QSizePolicy,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from cnnviz.core.probes import ActivationSnapshot
from cnnviz.ui import colormaps
from cnnviz.ui.live_text import LiveText

SCALINGS = ("per channel", "shared")
DEAD_COLOUR = QColor(220, 60, 60)
HIGHLIGHT = QColor(255, 200, 40)


def _fmt(value: float) -> str:
    a = abs(value)
    if a == 0:
        return "0"
    if a >= 100 or a < 0.01:
        return f"{value:.1e}"
    return f"{value:.2f}"


def colour_maps(
    snap: ActivationSnapshot, image_index: int, scaling: str, lut: np.ndarray
) -> np.ndarray:
    """The channels of one probe image coloured: ``(C, h, w, 3)`` uint8.

    ``per channel`` stretches each channel over its own range for this image; ``shared`` uses
    one range for the whole layer and all probe images, so channels compare by brightness.
    """
    maps = snap.maps[image_index]
    if scaling == "shared":
        low, high = float(snap.maps.min()), float(snap.maps.max())
    else:
        low = maps.min(axis=(1, 2), keepdims=True)
        high = maps.max(axis=(1, 2), keepdims=True)
    return colormaps.apply(maps, lut, low, high)


class ImageStrip(QWidget):
    """Thumbnails of the probe images; a click chooses the one the maps are shown for."""

    sig_image_selected = Signal(int)

    THUMB = 34

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._images: list[QImage] = []
        self._shown = np.zeros((0, 1, 1, 1), np.uint8)
        self._names: list[str] = []
        self.current = 0
        self.setFixedHeight(self.THUMB + 6)
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)

    def set_images(self, images: np.ndarray, names: list[str]) -> None:
        """Show ``images`` (uint8 ``(N, H, W, C)``) with tooltips ``names``."""
        if names == self._names and np.array_equal(images, self._shown):
            return  # every capture during training brings the same probe images
        self._shown = np.array(images)
        self._images = [colormaps.qimage(colormaps.as_rgb(im)) for im in images]
        self._names = names
        self.current = min(self.current, max(0, len(self._images) - 1))
        self.setMinimumWidth(len(self._images) * (self.THUMB + 4))
        self.update()

    def _rect(self, i: int) -> QRect:
        return QRect(2 + i * (self.THUMB + 4), 3, self.THUMB, self.THUMB)

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 - Qt's name
        p = QPainter(self)
        for i, image in enumerate(self._images):
            r = self._rect(i)
            p.drawImage(r, image)
            if i == self.current:
                p.setPen(QPen(HIGHLIGHT, 2))
                p.drawRect(r.adjusted(-1, -1, 1, 1))
        p.end()

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt's name
        for i in range(len(self._images)):
            if self._rect(i).contains(event.position().toPoint()):
                self.current = i
                self.update()
                self.sig_image_selected.emit(i)
                return

    def event(self, event) -> bool:  # noqa: D102 - tooltips per thumbnail
        if event.type() == event.Type.ToolTip:
            for i in range(len(self._images)):
                if self._rect(i).contains(event.pos()):
                    self.setToolTip(self._names[i] if i < len(self._names) else "")
                    break
        return super().event(event)


class ChannelGrid(QWidget):
    """All channels of a layer as tiles with their statistics; one widget paints them all."""

    sig_channel_clicked = Signal(int)

    GAP = 6
    TEXT_H = 13

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._tiles: list[QImage] = []
        self._stats: list[str] = []
        self._dead: list[bool] = []
        self.selected = -1
        self._tile = 48
        self._cols = 1
        self._map_size = (1, 1)
        self.setMouseTracking(False)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)

    # ------------------------------------------------------------ data
    def set_tiles(
        self, rgb: np.ndarray, stats: list[str], dead: list[bool], available_height: int
    ) -> None:
        """Show ``rgb`` (``(C, h, w, 3)`` uint8) with a line of ``stats`` under each tile."""
        self._tiles = [colormaps.qimage(t) for t in rgb]
        self._stats = stats
        self._dead = dead
        self._map_size = (int(rgb.shape[1]), int(rgb.shape[2])) if len(rgb) else (1, 1)
        self._available_height = available_height
        self._relayout()
        self.update()

    def tile_count(self) -> int:
        """Tiles shown."""
        return len(self._tiles)

    def stat_text(self, channel: int) -> str:
        """The statistics line under ``channel``."""
        return self._stats[channel]

    def is_dead(self, channel: int) -> bool:
        """Whether ``channel`` is marked as a dead ReLU."""
        return self._dead[channel]

    # ------------------------------------------------------------ geometry
    def _relayout(self) -> None:
        n = len(self._tiles)
        width = max(self.width(), 200)
        if n == 0:
            self.setMinimumHeight(0)
            return
        h, w = self._map_size
        aspect = h / w
        # The largest tile (up to 128 px) with which every channel fits in the visible height;
        # below 28 px the grid scrolls instead.
        avail = max(getattr(self, "_available_height", 200), 60)
        best = 28
        for side in range(128, 27, -2):
            cols = max(1, (width - self.GAP) // (side + self.GAP))
            rows = math.ceil(n / cols)
            if rows * (side * aspect + self.TEXT_H + self.GAP) + self.GAP <= avail:
                best = side
                break
        # Whole multiples of the map size keep every map pixel the same size.
        if w <= best:
            best = w * (best // w)
        self._tile = best
        self._cols = max(1, (width - self.GAP) // (best + self.GAP))
        rows = math.ceil(n / self._cols)
        self.setMinimumHeight(int(rows * (best * aspect + self.TEXT_H + self.GAP) + self.GAP))

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        self._relayout()
        super().resizeEvent(event)

    def set_available_height(self, height: int) -> None:
        """The height of the visible area, which the tile size tries to fill."""
        self._available_height = height
        self._relayout()
        self.update()

    def tile_rect(self, channel: int) -> QRect:
        """Where ``channel``'s map is drawn."""
        h, w = self._map_size
        tile_h = int(round(self._tile * h / w))
        row, col = divmod(channel, self._cols)
        x = self.GAP + col * (self._tile + self.GAP)
        y = self.GAP + row * (tile_h + self.TEXT_H + self.GAP)
        return QRect(x, y, self._tile, tile_h)

    def channel_at(self, pos: QPoint) -> int:
        """The channel whose tile (or statistics line) is at ``pos``, or -1."""
        for i in range(len(self._tiles)):
            if self.tile_rect(i).adjusted(0, 0, 0, self.TEXT_H).contains(pos):
                return i
        return -1

    # ------------------------------------------------------------ painting, input
    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 - Qt's name
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, False)
        font = QFont(self.font())
        font.setPointSizeF(max(6.5, font.pointSizeF() * 0.72))
        p.setFont(font)
        text_colour = self.palette().color(self.foregroundRole())
        clip = event.rect()
        for i, image in enumerate(self._tiles):
            r = self.tile_rect(i)
            if not r.adjusted(0, 0, 0, self.TEXT_H).intersects(clip):
                continue
            p.drawImage(r, image)
            if i == self.selected:
                p.setPen(QPen(HIGHLIGHT, 2))
                p.drawRect(r.adjusted(-2, -2, 1, 1))
            text_rect = QRect(r.left() - 2, r.bottom() + 1, r.width() + 4, self.TEXT_H)
            p.setPen(DEAD_COLOUR if self._dead[i] else text_colour)
            p.drawText(text_rect, Qt.AlignmentFlag.AlignCenter, self._stats[i])
        p.end()

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt's name
        channel = self.channel_at(event.position().toPoint())
        if channel >= 0:
            self.selected = channel
            self.update()
            self.sig_channel_clicked.emit(channel)


class MapDetail(QWidget):
    """One channel enlarged; hovering outlines a unit, a click asks for its receptive field."""

    sig_unit_clicked = Signal(int, int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._image: QImage | None = None
        self._shape = (1, 1)
        self.hover: tuple[int, int] | None = None
        self.marked: tuple[int, int] | None = None
        self.setMouseTracking(True)
        self.setMinimumSize(120, 120)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setCursor(Qt.CursorShape.CrossCursor)

    def set_map(self, rgb: np.ndarray | None) -> None:
        """Show ``rgb`` (``(h, w, 3)`` uint8), or nothing."""
        self._image = None if rgb is None else colormaps.qimage(rgb)
        if rgb is not None:
            self._shape = (int(rgb.shape[0]), int(rgb.shape[1]))
        self.update()

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt's name
        return QSize(220, 220)

    def map_rect(self) -> QRect:
        """Where the map is drawn: the largest rectangle of its aspect that fits."""
        h, w = self._shape
        side = min(self.width() / w, self.height() / h)
        if side >= 1:
            side = math.floor(side)
        dw, dh = int(w * side), int(h * side)
        return QRect((self.width() - dw) // 2, (self.height() - dh) // 2, dw, dh)

    def unit_at(self, pos: QPoint) -> tuple[int, int] | None:
        """``(y, x)`` of the unit under ``pos``, or None outside the map."""
        r = self.map_rect()
        if self._image is None or not r.contains(pos):
            return None
        h, w = self._shape
        y = min(h - 1, (pos.y() - r.top()) * h // max(1, r.height()))
        x = min(w - 1, (pos.x() - r.left()) * w // max(1, r.width()))
        return int(y), int(x)

    def unit_rect(self, y: int, x: int) -> QRect:
        """Where unit ``(y, x)`` is drawn."""
        r = self.map_rect()
        h, w = self._shape
        left = r.left() + x * r.width() / w
        top = r.top() + y * r.height() / h
        return QRect(round(left), round(top), round(r.width() / w) or 1, round(r.height() / h) or 1)

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 - Qt's name
        p = QPainter(self)
        if self._image is None:
            p.end()
            return
        p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, False)
        p.drawImage(self.map_rect(), self._image)
        for unit, colour, width in (
            (self.hover, QColor(255, 255, 255), 1),
            (self.marked, HIGHLIGHT, 2),
        ):
            if unit is not None:
                p.setPen(QPen(colour, width))
                p.drawRect(self.unit_rect(*unit).adjusted(0, 0, -1, -1))
        p.end()

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt's name
        unit = self.unit_at(event.position().toPoint())
        if unit != self.hover:
            self.hover = unit
            self.update()

    def leaveEvent(self, event) -> None:  # noqa: N802 - Qt's name
        self.hover = None
        self.update()

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt's name
        unit = self.unit_at(event.position().toPoint())
        if unit is not None:
            self.marked = unit
            self.update()
            self.sig_unit_clicked.emit(*unit)


class ActivationView(QWidget):
    """The selected layer's channels for one probe image, with statistics and an enlarged map.

    Signals:
        sig_unit_clicked(layer, channel, y, x, image_index): a unit of the enlarged map was
            clicked (the panel answers with its receptive field).
        sig_image_changed(image_index): another probe image was chosen.
    """

    sig_unit_clicked = Signal(str, int, int, int, int)
    sig_image_changed = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.snapshot: ActivationSnapshot | None = None
        self.image_index = 0
        self.channel = 0
        self.class_names: tuple[str, ...] = ()
        self._rgb: np.ndarray | None = None

        # Both change with every capture while training: LiveText, not QLabel (see there).
        self.title = LiveText("Select a layer to see its activation maps.")
        self.title.setObjectName("probeTitle")
        self.scaling = QComboBox()
        self.scaling.addItems(list(SCALINGS))
        self.scaling.setToolTip(
            "per channel: each map uses its whole colour range; shared: one range for the "
            "layer, so brighter means a larger activation"
        )
        self.colormap = QComboBox()
        self.colormap.addItems(list(colormaps.COLORMAPS))
        self.strip = ImageStrip()
        self.grid = ChannelGrid()
        self.scroll = QScrollArea()
        self.scroll.setWidget(self.grid)
        self.scroll.setWidgetResizable(True)
        self.scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        self.detail = MapDetail()
        self.detail_label = LiveText("", lines=5)

        top = QHBoxLayout()
        top.setContentsMargins(0, 0, 0, 0)
        top.addWidget(self.title, 1)
        top.addWidget(QLabel("Scale"))
        top.addWidget(self.scaling)
        top.addWidget(QLabel("Colours"))
        top.addWidget(self.colormap)
        images = QHBoxLayout()
        images.setContentsMargins(0, 0, 0, 0)
        images.addWidget(QLabel("Probe image"))
        images.addWidget(self.strip)
        images.addStretch(1)
        right = QWidget()
        right_layout = QVBoxLayout(right)
        right_layout.setContentsMargins(4, 0, 0, 0)
        right_layout.addWidget(self.detail, 1)
        right_layout.addWidget(self.detail_label)
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(self.scroll)
        self.splitter.addWidget(right)
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setSizes([600, 230])
        right.setMinimumWidth(170)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(top)
        layout.addLayout(images)
        layout.addWidget(self.splitter, 1)

        self.scaling.currentTextChanged.connect(self._on_scaling_changed)
        self.colormap.currentTextChanged.connect(self._on_colormap_changed)
        self.strip.sig_image_selected.connect(self._on_strip_image_selected)
        self.grid.sig_channel_clicked.connect(self._on_grid_channel_clicked)
        self.detail.sig_unit_clicked.connect(self._on_detail_unit_clicked)

    # ------------------------------------------------------------ public
    def set_snapshot(self, snap: ActivationSnapshot | None) -> None:
        """Show ``snap`` (None clears); keeps the chosen image and channel where they exist."""
        layer_changed = snap is None or self.snapshot is None or snap.layer != self.snapshot.layer
        self.snapshot = snap
        if snap is None:
            self.grid.set_tiles(np.zeros((0, 1, 1, 3), np.uint8), [], [], self._grid_height())
            self.detail.set_map(None)
            self.detail_label.setText("")
            return
        if layer_changed:
            self.channel = 0
            self.detail.marked = None
        self.channel = min(self.channel, snap.channels - 1)
        self.image_index = min(self.image_index, snap.maps.shape[0] - 1)
        names = [snap_label(snap, i, self.class_names) for i in range(snap.maps.shape[0])]
        self.strip.current = self.image_index
        self.strip.set_images(snap.images, names)
        self._refresh()

    def set_message(self, text: str) -> None:
        """Show ``text`` instead of a layer (nothing selected, a probe failed ...)."""
        self.set_snapshot(None)
        self.title.setText(text)

    def select_channel(self, channel: int) -> None:
        """Enlarge ``channel``."""
        if self.snapshot is None or not 0 <= channel < self.snapshot.channels:
            return
        self.channel = channel
        self.grid.selected = channel
        self.grid.update()
        self._refresh_detail()

    def select_image(self, index: int) -> None:
        """Show the maps of probe image ``index``."""
        if self.snapshot is None or not 0 <= index < self.snapshot.maps.shape[0]:
            return
        self.image_index = index
        self.strip.current = index
        self.strip.update()
        self._refresh()
        self.sig_image_changed.emit(index)

    # ------------------------------------------------------------ drawing
    def _grid_height(self) -> int:
        return max(60, self.scroll.viewport().height())

    def _lut(self) -> np.ndarray:
        return colormaps.COLORMAPS[self.colormap.currentText()]

    def _refresh(self) -> None:
        snap = self.snapshot
        if snap is None:
            return
        c, h, w = snap.maps.shape[1:]
        shape = f"{c} × {h} × {w}" if snap.spatial else f"{c} units"
        dead = snap.dead_channels
        dead_text = f", <span style='color:#dc3c3c'>{dead} dead</span>" if dead else ""
        # The step is the timeline's, beside its slider.
        self.title.setText(f"<b>{snap.layer}</b> &nbsp; {shape}{dead_text}")
        if snap.spatial:
            rgb = colour_maps(snap, self.image_index, self.scaling.currentText(), self._lut())
        else:
            # A vector: one tile per unit would be a grid of single pixels; show the vector as
            # a strip per image instead, all images at once, one colour range.
            rgb = colormaps.apply(snap.maps[:, :, 0, 0][None], self._lut())
        self._rgb = rgb
        stats = [
            f"{_fmt(float(snap.channel_mean[i]))} · {snap.zero_fraction[i] * 100:.0f}% 0"
            for i in range(c)
        ]
        dead_flags = [bool(z >= 1.0) for z in snap.zero_fraction]
        if snap.spatial:
            self.grid.set_tiles(rgb, stats, dead_flags, self._grid_height())
        else:
            self.grid.set_tiles(rgb, [f"{c} units × {snap.maps.shape[0]} images"], [False],
                                self._grid_height())  # fmt: skip
        self.grid.selected = self.channel if snap.spatial else -1
        self._refresh_detail()

    def _refresh_detail(self) -> None:
        snap = self.snapshot
        if snap is None or self._rgb is None:
            return
        if not snap.spatial:
            values = snap.maps[self.image_index, :, 0, 0]
            self.detail.set_map(None)
            top = np.argsort(values)[::-1][:3]
            self.detail_label.setText(
                "Largest outputs for this image: "
                + ", ".join(f"unit {i}: {_fmt(float(values[i]))}" for i in top)
            )
            return
        self.detail.set_map(self._rgb[self.channel])
        m = snap.maps[self.image_index, self.channel]
        self.detail_label.setText(
            f"<b>channel {self.channel}</b> · max {_fmt(float(m.max()))} · batch mean "
            f"{_fmt(float(snap.channel_mean[self.channel]))} · "
            f"{snap.zero_fraction[self.channel] * 100:.0f}% zeros<br>"
            "<span style='color:gray'>click a unit: what does it see?</span>"
        )

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().resizeEvent(event)
        self.grid.set_available_height(self._grid_height())

    # ------------------------------------------------------------ slots
    @Slot(str)
    def _on_scaling_changed(self, _text: str) -> None:
        self._refresh()

    @Slot(str)
    def _on_colormap_changed(self, _text: str) -> None:
        self._refresh()

    @Slot(int)
    def _on_strip_image_selected(self, index: int) -> None:
        self.select_image(index)

    @Slot(int)
    def _on_grid_channel_clicked(self, channel: int) -> None:
        self.select_channel(channel)

    @Slot(int, int)
    def _on_detail_unit_clicked(self, y: int, x: int) -> None:
        if self.snapshot is not None:
            self.sig_unit_clicked.emit(self.snapshot.layer, self.channel, y, x, self.image_index)


def snap_label(snap: ActivationSnapshot, index: int, classes: tuple[str, ...] = ()) -> str:
    """A tooltip for probe image ``index``: its number and, where known, its class."""
    label = int(snap.labels[index]) if index < len(snap.labels) else -1
    if label < 0:
        return f"image {index}"
    return f"image {index}: " + (classes[label] if label < len(classes) else f"class {label}")
