"""Live training curves: loss, accuracy and learning rate against epochs.

The curves are painted by this widget with QPainter, incrementally: the frame, the ticks, the
labels and every point drawn so far live in one cached pixmap, and a redraw adds only the new
segments to it, then copies it to the screen. The cache is rebuilt only when an axis range
changes (to a :func:`nice_ceiling`; the x axis a couple of seconds ahead of the points,
:data:`X_LOOKAHEAD_S`), when the widget is resized or cleared.

Why not pyqtgraph: the GUI thread's time is taken from training, which runs in a thread of
the same interpreter (the GIL) on the same cores (its OpenMP team waits at every barrier for
the thread the GUI displaced). A pyqtgraph redraw of these three plots cost 9.4 ms of the GUI
thread on the 2-core reference machine (4 ms with 1-pixel lines, 2 ms with nothing changed):
12% of a core at 16 redraws a second, and LeNet-5 trained at 0.83 of a bare loop. An
incremental redraw here costs about 0.4 ms, a full one about 3 ms (``benchmarks/training.py``
prints the GUI thread's share while training).

Redraws are coalesced to at most :data:`MAX_REDRAWS_PER_S` a second whatever the rate of
points, and none happen while the view is hidden (a tab behind another dock): it catches up
when shown.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import shiboken6
from PySide6.QtCore import QPointF, QRectF, QSize, Qt, QTimer, Slot
from PySide6.QtGui import (
    QColor,
    QFont,
    QFontMetricsF,
    QPainter,
    QPen,
    QPixmap,
    QPolygonF,
    QRegion,
)
from PySide6.QtWidgets import QSizePolicy, QToolTip, QWidget

# A curve growing by a few pixels ten times a second reads as smooth motion; see above for
# what each redraw costs training.
MAX_REDRAWS_PER_S = 10

X_LOOKAHEAD_S = 2.0
"""When the points pass the end of the x axis, it grows to hold about this many seconds more
of them (at the speed they came lately), to a :func:`nice_ceiling`. A small net trains an
epoch in seconds: growing only to the next nice step would rescale, and repaint everything,
at nearly every redraw of its first epochs (19 full repaints in LeNet-5's first 8 epochs,
about 6 ms each); a slow one still gets an axis its curve fills."""
_SPEED_GAP_S = 1.0  # a longer gap between two redraws is a pause, not a speed

_NICE_MANTISSAS = (1.0, 1.2, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0)
_TICK_STEPS = (1.0, 2.0, 2.5, 5.0)


def nice_ceiling(value: float) -> float:
    """The smallest of 1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8 times a power of ten that is >= value.

    Axis ranges end there: they change only when the data pass the next step (at most a third
    further), and a curve fills at least 75% of its axis.
    """
    if not math.isfinite(value) or value <= 0:
        return 1.0
    exponent = math.floor(math.log10(value))
    for mantissa in _NICE_MANTISSAS:
        ceiling = mantissa * 10.0**exponent
        # A tolerance: 0.3 must not become 0.4 because 3 * 0.1 = 0.30000000000000004.
        if ceiling >= value * (1 - 1e-9):
            return ceiling
    return 10.0 ** (exponent + 1)


def nice_ticks(top: float, max_count: int) -> tuple[list[float], list[str]]:
    """Tick values from 0 to ``top`` at a step of 1, 2, 2.5 or 5 times a power of ten, labelled.

    The step is the smallest that gives at most ``max_count`` intervals; the labels have as
    many decimals as the step needs (0.0004, not 0.00040000000000000002), in scientific
    notation for steps below 0.0001 (``2e-5``).
    """
    if not math.isfinite(top) or top <= 0:
        top = 1.0
    max_count = max(1, max_count)
    raw = top / max_count
    exponent = math.floor(math.log10(raw))
    step = 10.0 ** (exponent + 1)
    for mantissa in _TICK_STEPS:
        candidate = mantissa * 10.0**exponent
        if candidate >= raw * (1 - 1e-9):
            step = candidate
            break
    count = int(math.floor(top / step * (1 + 1e-9)))
    values = [i * step for i in range(count + 1)]
    if step < 1e-4:
        labels = ["0" if v == 0 else f"{v:.3g}".replace("e-0", "e-") for v in values]
    else:
        decimals = max(0, -math.floor(math.log10(step) + 1e-9))
        if abs(step / 10.0 ** math.floor(math.log10(step) + 1e-9) - 2.5) < 1e-6:
            decimals += 1  # 0.25, 0.5, 0.75: the step's second digit
        labels = [f"{v:.{decimals}f}" for v in values]
    return values, labels


TRAIN_COLOUR = "#3f6e9e"
VAL_COLOUR = "#c0622a"
LR_COLOUR = "#4f8a44"
_BACKGROUND = "#ffffff"
_AXIS = "#39414d"
_FRAME = "#b9c0ca"
_HINT = "#7a8390"
_LINE_WIDTH = 2.0  # the legend's samples; the curves: _draw_thick_line
_THICK_OFFSETS = ((-0.5, -0.5), (0.5, -0.5), (-0.5, 0.5), (0.5, 0.5))
_MARKER_RADIUS = 3.0
_TICK = 4.0


class _Series:
    """One curve's points in a growing buffer, and how many of them the cached image holds."""

    def __init__(self, plot: str, label: str, colour: str, markers: bool) -> None:
        self.plot = plot
        self.label = label
        self.colour = QColor(colour)
        self.pen = QPen(self.colour, 1)  # a hairline: see _draw_thick_line
        self.pen.setCosmetic(True)
        self.markers = markers
        self.x = np.empty(256)
        self.y = np.empty(256)
        self.n = 0
        self.drawn = 0
        self.x_max = -math.inf
        self.y_max = -math.inf

    def append(self, x: float, y: float) -> None:
        if self.n == self.x.size:
            self.x = np.concatenate([self.x, np.empty(self.x.size)])
            self.y = np.concatenate([self.y, np.empty(self.y.size)])
        self.x[self.n] = x
        self.y[self.n] = y
        self.n += 1
        self.x_max = max(self.x_max, x)
        self.y_max = max(self.y_max, y)

    def clear(self) -> None:
        self.n = 0
        self.drawn = 0
        self.x_max = -math.inf
        self.y_max = -math.inf


@dataclass
class _Plot:
    """One of the three plots: its title, units, legend corner and, once laid out, its frame."""

    key: str
    title: str
    units: str
    legend_top: bool  # the legend sits in the corner the curve leaves empty, on the left
    stretch: int
    rect: QRectF = field(default_factory=QRectF)
    legend: QRectF | None = None
    clip: QRegion = field(default_factory=QRegion)  # the frame, less the legend
    cell_left: float = 0.0
    cell_width: float = 0.0
    y_ticks: tuple[list[float], list[str]] = ((), ())  # type: ignore[assignment]
    x_ticks: tuple[list[float], list[str]] = ((), ())  # type: ignore[assignment]


class TrainingCurvesView(QWidget):
    """Three plots side by side: loss (train, validation), accuracy in % and learning rate.

    The x axis is in epochs (fractions within an epoch), counted across runs of the same model.
    Non-finite values are not drawn (a NaN loss ends a run; its point is left out). Hovering a
    plot shows the values nearest the pointer.
    """

    SERIES = ("train_loss", "val_loss", "train_accuracy", "val_accuracy", "lr")

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setMouseTracking(True)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumSize(360, 150)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)
        # Loss and accuracy are what a class watches: they get twice the rate's width.
        self._plots: dict[str, _Plot] = {
            "loss": _Plot("loss", "Loss", "cross-entropy", legend_top=False, stretch=2),
            "accuracy": _Plot("accuracy", "Accuracy", "%", legend_top=True, stretch=2),
            "lr": _Plot("lr", "Learning rate", "", legend_top=True, stretch=1),
        }
        self._series: dict[str, _Series] = {
            "train_loss": _Series("loss", "train (smoothed)", TRAIN_COLOUR, markers=False),
            "val_loss": _Series("loss", "validation", VAL_COLOUR, markers=True),
            "train_accuracy": _Series("accuracy", "train", TRAIN_COLOUR, markers=False),
            "val_accuracy": _Series("accuracy", "validation", VAL_COLOUR, markers=True),
            "lr": _Series("lr", "", LR_COLOUR, markers=False),
        }
        self._ranges: dict[str, float] = {}
        self._x_speed = 0.0  # epochs a second, between the last two redraws (not a pause)
        self._speed_mark: tuple[float, float] | None = None  # (time, x) of the last redraw
        self._x_placeholder = True
        self._update_ranges()
        self._image: QPixmap | None = None  # frame, labels and the curves drawn so far
        self._font_cache: tuple[QFont, QFont, QFont] | None = None
        self.redraw_count = 0
        self._last_redraw = -math.inf
        self._pending = False
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self._on_timer_timeout)

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt's name
        return QSize(900, 240)

    # ----------------------------------------------------------------- points
    def add_point(self, x: float, **values: float | None) -> None:
        """Append one point at epoch ``x`` to each named series (``train_loss=...``).

        None and non-finite values are skipped. The plots redraw within 1/10 s, or when they
        are shown next.
        """
        for name, value in values.items():
            if value is None or not math.isfinite(value):
                continue
            scale = 100.0 if name.endswith("accuracy") else 1.0
            self._series[name].append(x, value * scale)
        self._schedule_redraw()

    def clear(self) -> None:
        """Remove every point."""
        for series in self._series.values():
            series.clear()
        self._image = None
        self._x_speed = 0.0
        self._speed_mark = None
        self._x_placeholder = True
        self._update_ranges()
        self._schedule_redraw()

    def points(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """Copies of the x and y values of one series (accuracy in %), as drawn."""
        series = self._series[name]
        return series.x[: series.n].copy(), series.y[: series.n].copy()

    def drawn_points(self, name: str) -> int:
        """How many points of ``name`` the plot shows now (after the last redraw)."""
        return self._series[name].drawn

    def view_ranges(self) -> dict[str, tuple[float, float]]:
        """The (low, high) of the axes as set: ``x`` (shared), ``loss``, ``accuracy``, ``lr``."""
        return {
            "x": (0.0, self._ranges["x"]),
            "loss": (0.0, self._ranges["loss"]),
            "accuracy": (0.0, 100.0),
            "lr": (0.0, self._ranges["lr"]),
        }

    def plot_rect(self, plot: str) -> QRectF:
        """The frame of ``plot`` (``loss``, ``accuracy`` or ``lr``) in widget coordinates."""
        self._ensure_image()
        return QRectF(self._plots[plot].rect)

    def tick_labels(self, plot: str, axis: str) -> list[str]:
        """The labels of the ``x`` or ``y`` axis of ``plot``, as drawn."""
        self._ensure_image()
        ticks = self._plots[plot].x_ticks if axis == "x" else self._plots[plot].y_ticks
        return list(ticks[1])

    def map_to_widget(self, plot: str, x: float, y: float) -> QPointF:
        """Where the value (``x`` epochs, ``y``; accuracy in %) of ``plot`` is drawn."""
        self._ensure_image()
        px, py = self._map(self._plots[plot], np.array([x]), np.array([y]))
        return QPointF(float(px[0]), float(py[0]))

    def values_at(self, plot: str, x: float) -> list[tuple[str, float, float]]:
        """Per curve of ``plot``: (label, epoch, value) of the point nearest epoch ``x``."""
        found = []
        for series in self._series.values():
            if series.plot != plot or series.n == 0:
                continue
            xs = series.x[: series.n]
            i = int(np.clip(np.searchsorted(xs, x), 1, series.n - 1)) if series.n > 1 else 0
            if series.n > 1 and abs(xs[i - 1] - x) <= abs(xs[i] - x):
                i -= 1
            found.append((series.label or self._plots[plot].title, float(xs[i]), series.y[i]))
        return found

    # ----------------------------------------------------------------- redraws
    def _schedule_redraw(self) -> None:
        self._pending = True
        if self._timer.isActive() or not self.isVisible():
            return
        wait = self._last_redraw + 1.0 / MAX_REDRAWS_PER_S - time.perf_counter()
        self._timer.start(int(max(0.0, wait) * 1000))

    def showEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().showEvent(event)
        if self._pending:
            self._schedule_redraw()

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().resizeEvent(event)
        self._image = None  # laid out again at the next paint

    def _update_ranges(self) -> bool:
        """Set each axis to the nice ceiling of its data; True when one changed."""
        series = self._series
        x_max = max(s.x_max for s in series.values())
        x_top = self._ranges.get("x")
        if x_top is None or not x_max <= x_top or self._x_placeholder:
            x_top = nice_ceiling(x_max + X_LOOKAHEAD_S * self._x_speed)
        self._x_placeholder = not math.isfinite(x_max)  # no points yet: the first one sets it
        loss_max = max(series["train_loss"].y_max, series["val_loss"].y_max)
        wanted = {
            "x": x_top,
            "loss": nice_ceiling(loss_max * 1.05),
            "lr": nice_ceiling(series["lr"].y_max * 1.05),
        }
        if wanted == self._ranges:
            return False
        self._ranges = wanted
        return True

    @Slot()
    def _on_timer_timeout(self) -> None:
        if not self.isVisible():
            return  # hidden meanwhile: showEvent redraws
        self._pending = False
        self._last_redraw = time.perf_counter()
        self.redraw_count += 1
        self._measure_speed(self._last_redraw)
        if self._update_ranges():
            self._image = None
        changed = self._draw_new_points() if self._image is not None else None
        if changed is None:
            self._ensure_image()
            self.update()
        elif not changed.isEmpty():
            # Only where the new segments are: the window system copies less, too.
            self.update(changed.toAlignedRect().adjusted(-2, -2, 2, 2))

    def _measure_speed(self, now: float) -> None:
        """How fast the points move along x, from the last redraw to this one."""
        x = max(s.x_max for s in self._series.values())
        if not math.isfinite(x):
            self._speed_mark = None
            return
        if self._speed_mark is not None:
            then, x_then = self._speed_mark
            if 0 < now - then <= _SPEED_GAP_S and x >= x_then:
                self._x_speed = (x - x_then) / (now - then)
        self._speed_mark = (now, x)

    def paintEvent(self, event) -> None:  # noqa: N802 - Qt's name
        self._ensure_image()
        painter = QPainter(self)
        painter.drawPixmap(0, 0, self._image)
        painter.end()

    # ----------------------------------------------------------------- drawing
    def _ensure_image(self) -> None:
        """Lay out and paint the frame, labels and every point, when the cache is stale."""
        if self._image is not None:
            return
        ratio = self.devicePixelRatioF()
        image = QPixmap(max(1, round(self.width() * ratio)), max(1, round(self.height() * ratio)))
        image.setDevicePixelRatio(ratio)
        image.fill(QColor(_BACKGROUND))
        painter = QPainter(image)
        # An error half-way must not leave a painter on a pixmap that is freed before it:
        # Qt then crashes when the error's traceback is dropped.
        try:
            painter.setRenderHint(QPainter.RenderHint.Antialiasing)
            painter.setRenderHint(QPainter.RenderHint.TextAntialiasing)
            self._layout()
            for plot in self._plots.values():
                self._paint_frame(painter, plot)
                self._paint_legend(painter, plot)
            for series in self._series.values():
                series.drawn = 0
                self._paint_series(painter, series, full=True)
            if not any(s.n for s in self._series.values()):
                painter.setPen(QColor(_HINT))
                painter.drawText(
                    self._plots["loss"].rect,
                    Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap,
                    "The curves appear here while the model trains.",
                )
        finally:
            painter.end()
        self._image = image

    def _draw_new_points(self) -> QRectF | None:
        """Add the points that came since the last redraw to the cached image.

        Returns:
            The area drawn on, or None when the image must be painted afresh instead (the
            points were cleared, or the first point came and the empty plot's hint must go).
        """
        fresh = [s for s in self._series.values() if s.n != s.drawn]
        if not fresh:
            return QRectF()
        if any(s.n < s.drawn for s in fresh) or not any(s.drawn for s in self._series.values()):
            self._image = None
            return None
        changed = QRectF()
        painter = QPainter(self._image)
        try:  # see _ensure_image
            painter.setRenderHint(QPainter.RenderHint.Antialiasing)
            for series in fresh:
                changed = changed.united(self._paint_series(painter, series, full=False))
        finally:
            painter.end()
        return changed

    def _fonts(self) -> tuple[QFont, QFont]:
        """The titles' font and the labels' (a little smaller), from the widget's font."""
        if self._font_cache is None or self._font_cache[0] != self.font():
            title = QFont(self.font())
            title.setBold(True)
            small = QFont(self.font())
            small.setPointSizeF(max(7.0, self.font().pointSizeF() * 0.9))
            self._font_cache = (QFont(self.font()), title, small)
        return self._font_cache[1], self._font_cache[2]

    def _layout(self) -> None:
        """Place the three frames: the loss and accuracy twice the width of the rate."""
        title_font, small = self._fonts()
        title_height = QFontMetricsF(title_font).height()
        metrics = QFontMetricsF(small)
        line = metrics.height()
        width, height = float(self.width()), float(self.height())
        gap, margin = 14.0, 6.0
        total = sum(p.stretch for p in self._plots.values())
        available = width - 2 * margin - gap * (len(self._plots) - 1)
        left = margin
        for plot in self._plots.values():
            cell = available * plot.stretch / total
            top_y = 100.0 if plot.key == "accuracy" else self._ranges[plot.key]
            frame_height = max(20.0, height - margin - title_height - 4 - 2 * line - 6)
            plot.y_ticks = nice_ticks(top_y, max(2, int(frame_height / (2.2 * line))))
            label_width = max(metrics.horizontalAdvance(t) for t in plot.y_ticks[1])
            units_width = line + 2 if plot.units else 0.0
            frame_left = left + units_width + label_width + _TICK + 3
            frame_width = max(20.0, left + cell - frame_left - 4)
            widest = metrics.horizontalAdvance(f"{self._ranges['x']:.3g}") + 16
            plot.x_ticks = nice_ticks(self._ranges["x"], max(1, int(frame_width / widest)))
            plot.cell_left = left
            plot.cell_width = cell
            plot.rect = QRectF(frame_left, margin + title_height + 4, frame_width, frame_height)
            left += cell + gap

    def _map(self, plot: _Plot, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        rect = plot.rect
        top_y = 100.0 if plot.key == "accuracy" else self._ranges[plot.key]
        px = rect.left() + x / self._ranges["x"] * rect.width()
        py = rect.bottom() - y / top_y * rect.height()
        return px, py

    def _paint_frame(self, painter: QPainter, plot: _Plot) -> None:
        title_font, small = self._fonts()
        metrics = QFontMetricsF(small)
        rect = plot.rect
        axis = QColor(_AXIS)
        painter.setFont(title_font)
        painter.setPen(axis)
        # Centred on the frame, but a narrow frame's title may use its whole cell, elided last.
        title_width = QFontMetricsF(title_font).horizontalAdvance(plot.title)
        centre = min(
            max(rect.center().x(), plot.cell_left + title_width / 2),
            plot.cell_left + plot.cell_width - title_width / 2,
        )
        title = QFontMetricsF(title_font).elidedText(
            plot.title, Qt.TextElideMode.ElideRight, plot.cell_width
        )
        title_rect = QRectF(centre - plot.cell_width / 2, 0, plot.cell_width, rect.top() - 2)
        painter.drawText(title_rect, Qt.AlignmentFlag.AlignCenter, title)
        painter.setFont(small)
        painter.setPen(QPen(QColor(_FRAME), 1))
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawRect(rect)
        painter.setPen(QPen(axis, 1))
        painter.drawLine(rect.bottomLeft(), rect.topLeft())
        painter.drawLine(rect.bottomLeft(), rect.bottomRight())
        values, labels = plot.y_ticks
        _, ys = self._map(plot, np.zeros(len(values)), np.asarray(values, dtype=float))
        for y, label in zip(ys.tolist(), labels, strict=True):
            painter.drawLine(QPointF(rect.left() - _TICK, y), QPointF(rect.left(), y))
            box = QRectF(rect.left() - _TICK - 200, y - metrics.height() / 2, 197, metrics.height())
            painter.drawText(
                box, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter, label
            )
        values, labels = plot.x_ticks
        xs, _ = self._map(plot, np.asarray(values, dtype=float), np.zeros(len(values)))
        for x, label in zip(xs.tolist(), labels, strict=True):
            painter.drawLine(QPointF(x, rect.bottom()), QPointF(x, rect.bottom() + _TICK))
            box = QRectF(x - 40, rect.bottom() + _TICK + 1, 80, metrics.height())
            painter.drawText(box, Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop, label)
        caption = QRectF(
            rect.left(),
            rect.bottom() + _TICK + 1 + metrics.height(),
            rect.width(),
            metrics.height(),
        )
        painter.drawText(
            caption, Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop, "epoch"
        )
        if plot.units:
            painter.save()
            painter.translate(plot.cell_left, rect.center().y())
            painter.rotate(-90)
            box = QRectF(-rect.height() / 2, 0, rect.height(), metrics.height())
            painter.drawText(box, Qt.AlignmentFlag.AlignCenter, plot.units)
            painter.restore()

    def _paint_series(self, painter: QPainter, series: _Series, full: bool) -> QRectF:
        """Draw ``series`` from its first point (``full``) or from the last one drawn.

        Returns:
            The bounds of what was drawn.
        """
        if series.n == 0:
            return QRectF()
        plot = self._plots[series.plot]
        start = 0 if full else max(0, series.drawn - 1)
        px, py = self._map(plot, series.x[start : series.n], series.y[start : series.n])
        reach = _MARKER_RADIUS + 1
        if px.size > 64:
            left, right, top, bottom = px.min(), px.max(), py.min(), py.max()
        else:  # a redraw adds a point or two: Python's min and max beat numpy's on so few
            xs, ys = px.tolist(), py.tolist()
            left, right, top, bottom = min(xs), max(xs), min(ys), max(ys)
        bounds = QRectF(
            float(left) - reach,
            float(top) - reach,
            float(right - left) + 2 * reach,
            float(bottom - top) + 2 * reach,
        )
        # Curves pass under the legend, which is painted once, with the frame.
        if plot.legend is not None and plot.legend.intersects(bounds):
            painter.setClipRegion(plot.clip)
        else:
            painter.setClipRect(plot.rect.adjusted(-_MARKER_RADIUS, -_MARKER_RADIUS, 1, 1))
        if px.size > 1:
            lx, ly = _peaks(px, py, plot.rect.width()) if full else (px, py)
            painter.setPen(series.pen)
            _draw_thick_line(painter, lx, ly)
        if series.markers:
            painter.setBrush(series.colour)
            painter.setPen(Qt.PenStyle.NoPen)
            first = 0 if full else series.drawn - start
            for a, b in zip(px[first:].tolist(), py[first:].tolist(), strict=True):
                painter.drawEllipse(QPointF(a, b), _MARKER_RADIUS, _MARKER_RADIUS)
        series.drawn = series.n
        return bounds

    def _paint_legend(self, painter: QPainter, plot: _Plot) -> None:
        entries = [s for s in self._series.values() if s.plot == plot.key and s.label]
        plot.legend = None
        if not entries:
            return
        _, small = self._fonts()
        metrics = QFontMetricsF(small)
        line = metrics.height()
        sample = 22.0
        width = sample + 12 + max(metrics.horizontalAdvance(s.label) for s in entries)
        height = line * len(entries) + 6
        rect = plot.rect
        top = rect.top() + 4 if plot.legend_top else rect.bottom() - 4 - height
        box = QRectF(rect.left() + 6, top, width, height)
        plot.legend = box
        frame = plot.rect.adjusted(-_MARKER_RADIUS, -_MARKER_RADIUS, 1, 1)
        plot.clip = QRegion(frame.toAlignedRect()) - QRegion(box.toAlignedRect())
        painter.save()
        painter.setFont(small)
        painter.setPen(QPen(QColor(_FRAME), 1))
        painter.setBrush(QColor(_BACKGROUND))
        painter.drawRoundedRect(box, 3, 3)
        for i, series in enumerate(entries):
            y = box.top() + 3 + line * (i + 0.5)
            painter.setPen(QPen(series.colour, _LINE_WIDTH))
            painter.drawLine(QPointF(box.left() + 4, y), QPointF(box.left() + 4 + sample, y))
            if series.markers:
                painter.setBrush(series.colour)
                painter.drawEllipse(
                    QPointF(box.left() + 4 + sample / 2, y), _MARKER_RADIUS, _MARKER_RADIUS
                )
            painter.setPen(QColor(_AXIS))
            text = QRectF(box.left() + sample + 8, y - line / 2, width, line)
            painter.drawText(
                text, Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, series.label
            )
        painter.restore()

    # ----------------------------------------------------------------- hover
    def mouseMoveEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().mouseMoveEvent(event)
        if self._image is None:
            return
        position = event.position()
        for plot in self._plots.values():
            if not plot.rect.contains(position):
                continue
            x = (position.x() - plot.rect.left()) / plot.rect.width() * self._ranges["x"]
            found = self.values_at(plot.key, x)
            if not found:
                break
            lines = [f"epoch {x:.2f}"]
            for label, at, value in found:
                unit = "%" if plot.key == "accuracy" else ""
                lines.append(f"{label}: {value:.4g}{unit} (epoch {at:.2f})")
            QToolTip.showText(event.globalPosition().toPoint(), "\n".join(lines), self)
            return
        QToolTip.hideText()


def _polygon(xs: np.ndarray, ys: np.ndarray) -> QPolygonF:
    """A QPolygonF of the points (xs, ys), written through numpy into the polygon's memory.

    A QPointF per point from Python costs about 1 µs each: a third of repainting a plot.
    """
    polygon = QPolygonF()
    polygon.resize(len(xs))
    if len(xs):
        memory = shiboken6.VoidPtr(polygon.data(), len(xs) * 16, True)
        points = np.frombuffer(memory, dtype=np.float64).reshape(len(xs), 2)
        points[:, 0] = xs
        points[:, 1] = ys
    return polygon


def _draw_thick_line(painter: QPainter, xs: np.ndarray, ys: np.ndarray) -> None:
    """A polyline about two pixels thick, in the painter's pen, as four hairlines half a
    pixel apart.

    Qt's raster engine strokes a pen wider than one pixel through its general stroker, about
    30 times the cost of a hairline (2.6 ms against 0.09 ms for 600 points, antialiased, on the
    2-core reference machine); four hairlines look the same at a seventh of the cost, which
    matters because the GUI thread's time is taken from training (see the module's text).
    """
    line = _polygon(xs, ys)
    for dx, dy in _THICK_OFFSETS:
        painter.drawPolyline(line.translated(dx, dy))


def _peaks(px: np.ndarray, py: np.ndarray, width: float) -> tuple[np.ndarray, np.ndarray]:
    """Screen points of a long curve, at most two per pixel column: its lowest and highest.

    A curve of many thousand points keeps its spikes (a loss that jumped for one batch) while
    drawing costs what its width in pixels does.
    """
    if px.size <= 3 * max(1.0, width):
        return px, py
    columns = np.floor(px).astype(np.int64)
    starts = np.flatnonzero(np.r_[True, columns[1:] != columns[:-1]])
    low = np.minimum.reduceat(py, starts)
    high = np.maximum.reduceat(py, starts)
    xs = np.repeat(px[starts], 2)
    ys = np.empty(xs.size)
    # Alternate the order so that each column's vertical stroke joins the next one's start.
    ys[0::2] = high
    ys[1::2] = low
    return xs, ys
