"""Live training curves: loss, accuracy and learning rate against epochs (pyqtgraph).

Points are appended into preallocated numpy buffers (doubling when full) and handed to
pyqtgraph as views of those buffers, so a new point costs no copy of the history; redraws are
coalesced to at most :data:`MAX_REDRAWS_PER_S` a second whatever the rate of points, and none
happen while the view is hidden (a tab behind another dock): it catches up when shown.

The axes do not follow every point (pyqtgraph's auto-range would): their ranges grow in steps
of 20-33% (:func:`nice_ceiling`). A redraw whose ranges changed regenerates the six axes'
ticks and labels, about 12 ms of the GUI thread on the 2-core reference machine; one with the
same ranges reuses them, about 4 ms. While training, that is the difference between a window
that stutters 20 times a second and one that stays fluid (``benchmarks/gui_lag.py``).
"""

from __future__ import annotations

import math
import time

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QTimer, Slot
from PySide6.QtWidgets import QVBoxLayout, QWidget

MAX_REDRAWS_PER_S = 20

_NICE_MANTISSAS = (1.0, 1.2, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0)


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


TRAIN_COLOUR = "#3f6e9e"
VAL_COLOUR = "#c0622a"
LR_COLOUR = "#4f8a44"
_BACKGROUND = "#ffffff"
_AXIS = "#39414d"


class _Series:
    """One curve's points in a growing buffer."""

    def __init__(self, item: pg.PlotDataItem) -> None:
        self.item = item
        self.x = np.empty(256)
        self.y = np.empty(256)
        self.n = 0
        self.dirty = False
        self.x_max = -math.inf
        self.y_max = -math.inf

    def append(self, x: float, y: float) -> None:
        if self.n == self.x.size:
            self.x = np.concatenate([self.x, np.empty(self.x.size)])
            self.y = np.concatenate([self.y, np.empty(self.y.size)])
        self.x[self.n] = x
        self.y[self.n] = y
        self.n += 1
        self.dirty = True
        self.x_max = max(self.x_max, x)
        self.y_max = max(self.y_max, y)

    def clear(self) -> None:
        self.n = 0
        self.dirty = True
        self.x_max = -math.inf
        self.y_max = -math.inf

    def flush(self) -> None:
        if self.dirty:
            self.item.setData(self.x[: self.n], self.y[: self.n])
            self.dirty = False


class TrainingCurvesView(QWidget):
    """Three plots side by side: loss (train, validation), accuracy in % and learning rate.

    The x axis is in epochs (fractions within an epoch), counted across runs of the same model.
    Non-finite values are not drawn (a NaN loss ends a run; its point is left out).
    """

    SERIES = ("train_loss", "val_loss", "train_accuracy", "val_accuracy", "lr")

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        pg.setConfigOptions(antialias=True)
        self.canvas = pg.GraphicsLayoutWidget()
        self.canvas.setBackground(_BACKGROUND)
        self.canvas.ci.setContentsMargins(2, 2, 2, 2)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.canvas)
        self.loss_plot = self._plot("Loss", "cross-entropy")
        self.accuracy_plot = self._plot("Accuracy", "%")
        self.lr_plot = self._plot("Learning rate", "")
        # Loss and accuracy are what a class watches: they get twice the rate's width.
        for column, stretch in enumerate((2, 2, 1)):
            self.canvas.ci.layout.setColumnStretchFactor(column, stretch)
        # Ranges are set by _update_ranges, in steps (see the module's documentation). The
        # loss and the learning rate start at 0: a decay then reads as a fraction of the peak.
        for plot in (self.loss_plot, self.accuracy_plot, self.lr_plot):
            plot.disableAutoRange()
        self.accuracy_plot.setYRange(0, 100, padding=0.02)
        self._ranges: dict[str, float] = {}
        self._series: dict[str, _Series] = {
            "train_loss": self._curve(
                self.loss_plot, "train (smoothed)", TRAIN_COLOUR, markers=False
            ),
            "val_loss": self._curve(self.loss_plot, "validation", VAL_COLOUR, markers=True),
            "train_accuracy": self._curve(self.accuracy_plot, "train", TRAIN_COLOUR, markers=False),
            "val_accuracy": self._curve(self.accuracy_plot, "validation", VAL_COLOUR, markers=True),
            "lr": self._curve(self.lr_plot, "", LR_COLOUR, markers=False),
        }
        self.redraw_count = 0
        self._last_redraw = -math.inf
        self._pending = False
        self._update_ranges()
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self._on_timer_timeout)

    def _plot(self, title: str, units: str) -> pg.PlotItem:
        plot = self.canvas.addPlot(title=f"<span style='color:{_AXIS}'>{title}</span>")
        # No grid: pyqtgraph's grid lines cost about 17 of the 21 ms of a redraw of the three
        # plots (measured offscreen, 2 cores), which the GUI thread would lose 20 times a second.
        plot.setLabel("bottom", "epoch")
        if units:
            plot.setLabel("left", units)
        for name in ("left", "bottom"):
            axis = plot.getAxis(name)
            axis.setPen(_AXIS)
            axis.setTextPen(_AXIS)
            # "epoch (x0.001)" with ticks of 0 to 400 early in the first epoch reads badly.
            axis.enableAutoSIPrefix(False)
        plot.setClipToView(True)
        plot.setDownsampling(auto=True, mode="peak")
        plot.setMenuEnabled(False)
        return plot

    def _curve(self, plot: pg.PlotItem, name: str, colour: str, markers: bool) -> _Series:
        if name and plot.legend is None:
            # Loss falls and accuracy rises: the corner each curve leaves empty.
            offset = (-4, 4) if plot is self.loss_plot else (-4, -4)
            plot.addLegend(offset=offset, labelTextColor=_AXIS, brush=(255, 255, 255, 200))
        kwargs = {"pen": pg.mkPen(colour, width=2)}
        if markers:
            kwargs.update(symbol="o", symbolSize=6, symbolBrush=colour, symbolPen=colour)
        item = plot.plot(name=name or None, **kwargs)
        return _Series(item)

    # ----------------------------------------------------------------- points
    def add_point(self, x: float, **values: float | None) -> None:
        """Append one point at epoch ``x`` to each named series (``train_loss=...``).

        None and non-finite values are skipped. The plots redraw within 1/20 s, or when they
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
        self._schedule_redraw()

    def points(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """Copies of the x and y values of one series (accuracy in %), as drawn."""
        series = self._series[name]
        return series.x[: series.n].copy(), series.y[: series.n].copy()

    def drawn_points(self, name: str) -> int:
        """How many points of ``name`` the plot item holds now (after the last redraw)."""
        x, _ = self._series[name].item.getData()
        return 0 if x is None else len(x)

    def view_ranges(self) -> dict[str, tuple[float, float]]:
        """The (low, high) of the axes as set: ``x`` (shared), ``loss``, ``accuracy``, ``lr``."""
        return {
            "x": (0.0, self._ranges["x"]),
            "loss": (0.0, self._ranges["loss"]),
            "accuracy": (0.0, 100.0),
            "lr": (0.0, self._ranges["lr"]),
        }

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

    def _update_ranges(self) -> None:
        """Set each axis to the nice ceiling of its data; untouched while that is unchanged."""
        series = self._series
        x_max = max(s.x_max for s in series.values())
        loss_max = max(series["train_loss"].y_max, series["val_loss"].y_max)
        wanted = {
            "x": nice_ceiling(x_max),
            "loss": nice_ceiling(loss_max * 1.05),
            "lr": nice_ceiling(series["lr"].y_max * 1.05),
        }
        if wanted == self._ranges:
            return
        if wanted["x"] != self._ranges.get("x"):
            for plot in (self.loss_plot, self.accuracy_plot, self.lr_plot):
                plot.setXRange(0, wanted["x"], padding=0.01)
        if wanted["loss"] != self._ranges.get("loss"):
            self.loss_plot.setYRange(0, wanted["loss"], padding=0)
        if wanted["lr"] != self._ranges.get("lr"):
            self.lr_plot.setYRange(0, wanted["lr"], padding=0)
        self._ranges = wanted

    @Slot()
    def _on_timer_timeout(self) -> None:
        if not self.isVisible():
            return  # hidden meanwhile: showEvent redraws
        self._pending = False
        self._last_redraw = time.perf_counter()
        self.redraw_count += 1
        self._update_ranges()
        for series in self._series.values():
            series.flush()
