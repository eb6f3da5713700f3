"""Live training curves: loss, accuracy and learning rate against epochs (pyqtgraph).

Points are appended into preallocated numpy buffers (doubling when full) and handed to
pyqtgraph as views of those buffers, so a new point costs no copy of the history; redraws are
coalesced to at most :data:`MAX_REDRAWS_PER_S` a second whatever the rate of points.
"""

from __future__ import annotations

import math
import time

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QTimer, Slot
from PySide6.QtWidgets import QVBoxLayout, QWidget

MAX_REDRAWS_PER_S = 20

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

    def append(self, x: float, y: float) -> None:
        if self.n == self.x.size:
            self.x = np.concatenate([self.x, np.empty(self.x.size)])
            self.y = np.concatenate([self.y, np.empty(self.y.size)])
        self.x[self.n] = x
        self.y[self.n] = y
        self.n += 1
        self.dirty = True

    def clear(self) -> None:
        self.n = 0
        self.dirty = True

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
        self.accuracy_plot.setYRange(0, 100, padding=0.02)
        self.accuracy_plot.enableAutoRange(axis="y", enable=False)
        # From 0, so that a schedule's decay reads as a fraction of the peak rate.
        self.lr_plot.enableAutoRange(axis="y", enable=False)
        self._lr_max = 0.0
        self._series: dict[str, _Series] = {
            "train_loss": self._curve(
                self.loss_plot, "train (recent batches)", TRAIN_COLOUR, markers=False
            ),
            "val_loss": self._curve(self.loss_plot, "validation", VAL_COLOUR, markers=True),
            "train_accuracy": self._curve(self.accuracy_plot, "train", TRAIN_COLOUR, markers=False),
            "val_accuracy": self._curve(self.accuracy_plot, "validation", VAL_COLOUR, markers=True),
            "lr": self._curve(self.lr_plot, "", LR_COLOUR, markers=False),
        }
        self.redraw_count = 0
        self._last_redraw = -math.inf
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

        None and non-finite values are skipped. The plots redraw within 1/20 s.
        """
        for name, value in values.items():
            if value is None or not math.isfinite(value):
                continue
            scale = 100.0 if name.endswith("accuracy") else 1.0
            self._series[name].append(x, value * scale)
            if name == "lr" and value > self._lr_max:
                self._lr_max = value
                self.lr_plot.setYRange(0, value * 1.1, padding=0)
        self._schedule_redraw()

    def clear(self) -> None:
        """Remove every point."""
        for series in self._series.values():
            series.clear()
        self._lr_max = 0.0
        self._schedule_redraw()

    def points(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """Copies of the x and y values of one series (accuracy in %), as drawn."""
        series = self._series[name]
        return series.x[: series.n].copy(), series.y[: series.n].copy()

    def drawn_points(self, name: str) -> int:
        """How many points of ``name`` the plot item holds now (after the last redraw)."""
        x, _ = self._series[name].item.getData()
        return 0 if x is None else len(x)

    # ----------------------------------------------------------------- redraws
    def _schedule_redraw(self) -> None:
        if self._timer.isActive():
            return
        wait = self._last_redraw + 1.0 / MAX_REDRAWS_PER_S - time.perf_counter()
        self._timer.start(int(max(0.0, wait) * 1000))

    @Slot()
    def _on_timer_timeout(self) -> None:
        self._last_redraw = time.perf_counter()
        self.redraw_count += 1
        for series in self._series.values():
            series.flush()
