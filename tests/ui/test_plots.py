"""The live curves: stepwise axis ranges, coalesced redraws, no drawing while hidden."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
from PySide6.QtCore import QPointF
from PySide6.QtGui import QColor, QImage

from cnnviz.ui.plots import (
    MAX_REDRAWS_PER_S,
    TRAIN_COLOUR,
    TrainingCurvesView,
    nice_ceiling,
    nice_ticks,
)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1.0, 1.0),
        (1.01, 1.2),
        (2.31, 2.5),
        (0.3, 0.3),  # 3 * 0.1 is 0.30000000000000004 in floating point: still 0.3
        (0.0011, 0.0012),
        (7.0, 8.0),
        (8.5, 10.0),
        (95.0, 100.0),
        (0.0, 1.0),
        (float("nan"), 1.0),
    ],
)
def test_nice_ceiling_is_the_next_step_of_the_series(value, expected):
    assert nice_ceiling(value) == pytest.approx(expected)


def test_every_value_fills_at_least_75_percent_of_its_ceiling():
    for i in range(1, 2000):
        value = i * 0.0137
        ceiling = nice_ceiling(value)
        assert value <= ceiling * (1 + 1e-9)
        assert value / ceiling >= 0.75 - 1e-9, value


@pytest.fixture
def shown(qtbot):
    view = TrainingCurvesView()
    qtbot.addWidget(view)
    view.resize(900, 250)
    view.show()
    qtbot.waitExposed(view)
    return view


def test_axes_grow_in_steps_not_with_every_point(qtbot, shown, monkeypatch):
    monkeypatch.setattr("cnnviz.ui.plots.X_LOOKAHEAD_S", 0.0)  # the steps alone; see below
    shown.add_point(0.1, train_loss=2.3, lr=0.01)
    qtbot.waitUntil(lambda: shown.drawn_points("train_loss") == 1, timeout=2000)
    first = shown.view_ranges()
    # 2.3 * 1.05 = 2.415 -> 2.5; epochs 0.1 -> 0.1; lr 0.0105 -> 0.012
    assert first["loss"] == pytest.approx((0.0, 2.5))
    assert first["x"] == pytest.approx((0.0, 0.1))
    assert first["lr"] == pytest.approx((0.0, 0.012))
    # A smaller loss later in the same step: the ranges of the loss and lr stay put.
    shown.add_point(0.1, train_loss=1.9, lr=0.01)
    qtbot.waitUntil(lambda: shown.drawn_points("train_loss") == 2, timeout=2000)
    assert shown.view_ranges()["loss"] == first["loss"]
    assert shown.view_ranges()["lr"] == first["lr"]
    # Past the step: the axis moves to the next one.
    shown.add_point(0.5, train_loss=2.6)
    qtbot.waitUntil(lambda: shown.drawn_points("train_loss") == 3, timeout=2000)
    assert shown.view_ranges()["loss"] == pytest.approx((0.0, 3.0))
    assert shown.view_ranges()["x"] == pytest.approx((0.0, 0.5))


def _x_axes_of_a_run(qtbot, view, monkeypatch, epochs_per_s: float, seconds: float):
    """(x of the last point, end of the x axis) at each redraw of a run at a steady speed."""
    clock = [0.0]
    monkeypatch.setattr("cnnviz.ui.plots.time.perf_counter", lambda: clock[0])
    seen = []
    for i in range(1, int(seconds * 10) + 1):  # a point and a redraw every 0.1 s
        clock[0] = i * 0.1
        x = epochs_per_s * clock[0]
        view.add_point(x, train_loss=2.0, lr=0.01)
        qtbot.waitUntil(lambda i=i: view.drawn_points("train_loss") == i, timeout=2000)
        seen.append((x, view.view_ranges()["x"][1]))
    return seen


def _changes(axes) -> int:
    return sum(1 for (_, a), (_, b) in zip(axes, axes[1:], strict=False) if a != b)


def test_x_axis_grows_ahead_of_a_fast_net(qtbot, shown, monkeypatch):
    # LeNet-5 on this machine: about half an epoch a second.
    ahead = _x_axes_of_a_run(qtbot, shown, monkeypatch, 0.5, 20.0)
    assert all(x <= top for x, top in ahead)
    shown.clear()
    monkeypatch.setattr("cnnviz.ui.plots.X_LOOKAHEAD_S", 0.0)
    stepping = _x_axes_of_a_run(qtbot, shown, monkeypatch, 0.5, 20.0)
    # 0.05, 0.1, 0.15 ... 10 epochs, the axis at the next nice step (0.05, 0.1, 0.15, 0.2,
    # 0.25, 0.3, 0.4, 0.5, 0.6, 0.8, 1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10): 20 rescales,
    # each a full repaint. Two seconds ahead: the first point has no speed yet (0.05), then
    # 0.1 + 2 * 0.5 -> 1.2, 1.25 + 1 -> 2.5, 2.55 + 1 -> 4, 6, 8, 10.
    assert _changes(stepping) == 20
    assert sorted({top for _, top in ahead}) == pytest.approx([0.05, 1.2, 2.5, 4, 6, 8, 10])
    # After the first seconds the curve still fills half the axis or more.
    assert all(x / top >= 0.5 for x, top in ahead[30:])


def test_x_axis_of_a_slow_net_is_the_same_in_seconds(qtbot, shown, monkeypatch):
    # A large net on the CPU, an epoch in about three minutes: the axis holds the same
    # seconds of training as a fast net's, so a class sees its curve cross it as quickly.
    axes = _x_axes_of_a_run(qtbot, shown, monkeypatch, 0.005, 20.0)
    assert all(x <= top for x, top in axes)
    assert sorted({top for _, top in axes}) == pytest.approx(
        [0.0005, 0.012, 0.025, 0.04, 0.06, 0.08, 0.1]
    )
    assert all(x / top >= 0.6 for x, top in axes[100:])  # after 10 s: 10 of at most 16 s


def test_many_points_are_coalesced_into_few_redraws(qtbot, shown):
    before = shown.redraw_count
    for i in range(500):
        shown.add_point(i / 100, train_loss=1.0 / (i + 1))
    qtbot.waitUntil(lambda: shown.drawn_points("train_loss") == 500, timeout=2000)
    assert shown.redraw_count - before <= 2


def test_a_steady_stream_of_points_redraws_at_most_the_cap(qtbot, shown):
    before = shown.redraw_count
    start = time.perf_counter()
    i = 0
    while time.perf_counter() - start < 1.0:  # a point every 5 ms, as a fast trainer reports
        shown.add_point(i / 100, train_loss=1.0 / (i + 1))
        i += 1
        qtbot.wait(5)
    elapsed = time.perf_counter() - start
    redraws = shown.redraw_count - before
    assert 2 <= redraws <= MAX_REDRAWS_PER_S * elapsed + 2


@pytest.mark.parametrize(
    ("top", "count", "values", "labels"),
    [
        (2.5, 5, [0, 0.5, 1.0, 1.5, 2.0, 2.5], ["0.0", "0.5", "1.0", "1.5", "2.0", "2.5"]),
        (100.0, 5, [0, 20, 40, 60, 80, 100], ["0", "20", "40", "60", "80", "100"]),
        # 0.0012 / 5 = 0.00024 -> a step of 0.00025: four ticks, the fifth would pass the top
        (0.0012, 5, [0, 0.00025, 0.0005, 0.00075, 0.001], None),
        (0.012, 6, [0, 0.002, 0.004, 0.006, 0.008, 0.010, 0.012], None),
        (1.0, 4, [0, 0.25, 0.5, 0.75, 1.0], ["0.00", "0.25", "0.50", "0.75", "1.00"]),
        (3e-5, 3, [0, 1e-5, 2e-5, 3e-5], ["0", "1e-5", "2e-5", "3e-5"]),
    ],
)
def test_ticks_are_round_steps_with_the_decimals_they_need(top, count, values, labels):
    got_values, got_labels = nice_ticks(top, count)
    assert got_values == pytest.approx(values)
    if labels is not None:
        assert got_labels == labels
    # The label reads back as the value: no 0.0011 for 0.0012, no 0.30000000000000004.
    for value, label in zip(got_values, got_labels, strict=True):
        assert float(label) == pytest.approx(value, abs=1e-12)
        assert len(label) <= 7


def _colour_near(image: QImage, point: QPointF, colour: str, radius: int = 2) -> bool:
    """True when a pixel within ``radius`` of ``point`` is close to ``colour``."""
    want = QColor(colour)
    ratio = image.devicePixelRatio()
    cx, cy = round(point.x() * ratio), round(point.y() * ratio)
    for dx in range(-radius, radius + 1):
        for dy in range(-radius, radius + 1):
            pixel = image.pixelColor(cx + dx, cy + dy)
            if (
                abs(pixel.red() - want.red())
                + abs(pixel.green() - want.green())
                + abs(pixel.blue() - want.blue())
                < 60
            ):
                return True
    return False


def test_a_point_is_drawn_where_its_value_lies_on_the_axes(qtbot, shown):
    # A flat loss of 1.0 over 0..2 epochs: the axis ends at nice_ceiling(1.05) = 1.2, so the
    # line lies 1.0 / 1.2 of the frame's height above its bottom edge.
    for i in range(21):
        shown.add_point(i / 10, train_loss=1.0)
    qtbot.waitUntil(lambda: shown.drawn_points("train_loss") == 21, timeout=2000)
    image = shown.grab().toImage()
    frame = shown.plot_rect("loss")
    y = frame.bottom() - frame.height() * (1.0 / 1.2)
    x = frame.left() + frame.width() * 0.5  # epoch 1 of 2
    assert _colour_near(image, QPointF(x, y), TRAIN_COLOUR)
    assert shown.map_to_widget("loss", 1.0, 1.0) == QPointF(x, y)
    # Nothing of the curve at a loss of 0.5 in the same place.
    below = frame.bottom() - frame.height() * (0.5 / 1.2)
    assert not _colour_near(image, QPointF(x, below), TRAIN_COLOUR)
    assert shown.tick_labels("loss", "y")[-1] == "1.2"


def test_drawing_point_by_point_looks_like_drawing_at_once(qtbot, shown):
    """The cached image, grown one redraw at a time, matches a fresh paint of every point."""
    for i in range(60):
        shown.add_point(
            0.05 * i, train_loss=2.0 * math.exp(-i / 20), train_accuracy=1 - math.exp(-i / 20)
        )
        if i % 20 == 19:
            shown.add_point(0.05 * i, val_loss=2.1 * math.exp(-i / 20), val_accuracy=0.5)
        if i % 6 == 5:
            drawn = shown.redraw_count
            qtbot.waitUntil(lambda drawn=drawn: shown.redraw_count > drawn, timeout=2000)
    qtbot.waitUntil(lambda: shown.drawn_points("train_loss") == 60, timeout=2000)
    incremental = shown.grab().toImage()
    shown.resize(shown.width() + 1, shown.height())
    shown.resize(shown.width() - 1, shown.height())  # the cache is painted afresh
    fresh = shown.grab().toImage()
    assert incremental.size() == fresh.size()
    width, height = fresh.width(), fresh.height()
    differing = sum(
        1
        for x in range(0, width, 2)
        for y in range(0, height, 2)
        if abs(incremental.pixelColor(x, y).lightness() - fresh.pixelColor(x, y).lightness()) > 40
    )
    assert differing / ((width // 2) * (height // 2)) < 0.002


def test_a_one_batch_spike_survives_thinning_a_long_curve(qtbot, shown):
    # 20,000 points across a frame some 300 pixels wide are thinned to two per pixel column;
    # the column holding the spike keeps its highest point.
    xs = np.arange(20_000) / 1000.0
    for x in xs:
        shown.add_point(float(x), train_loss=0.5 if x != 10.0 else 2.0)
    qtbot.waitUntil(lambda: shown.drawn_points("train_loss") == 20_000, timeout=5000)
    shown.resize(shown.width() + 1, shown.height())  # a fresh paint: the thinned path
    image = shown.grab().toImage()
    top = shown.map_to_widget("loss", 10.0, 1.9)
    assert _colour_near(image, top, TRAIN_COLOUR, radius=2)


def test_hovering_shows_the_nearest_values(shown):
    shown.add_point(0.5, train_loss=1.4)
    shown.add_point(1.0, train_loss=1.0, val_loss=1.1)
    shown.add_point(1.5, train_loss=0.8)
    found = shown.values_at("loss", 1.1)
    assert ("train (smoothed)", 1.0, 1.0) in found
    assert ("validation", 1.0, 1.1) in found
    assert shown.values_at("loss", 1.4)[0] == ("train (smoothed)", 1.5, 0.8)
    assert shown.values_at("lr", 1.0) == []


def test_a_hidden_view_does_not_redraw_and_catches_up_when_shown(qtbot, shown):
    shown.hide()
    before = shown.redraw_count
    shown.add_point(1.0, val_loss=0.5, val_accuracy=0.8)
    qtbot.wait(200)
    assert shown.redraw_count == before and shown.drawn_points("val_loss") == 0
    assert shown.points("val_loss")[1].tolist() == [0.5]  # the data are kept
    shown.show()
    qtbot.waitUntil(lambda: shown.drawn_points("val_loss") == 1, timeout=2000)
    assert shown.redraw_count == before + 1
    assert shown.points("val_accuracy")[1].tolist() == [pytest.approx(80.0)]


def test_cleared_view_paints_at_once_with_the_empty_axes(qtbot, shown):
    shown.add_point(3.0, train_loss=2.0, lr=0.01)
    qtbot.waitUntil(lambda: shown.drawn_points("train_loss") == 1, timeout=2000)
    assert shown.view_ranges()["x"] == pytest.approx((0.0, 3.0))
    shown.clear()
    shown.repaint()  # before the redraw timer: pytest-qt fails the test on an error here
    assert shown.view_ranges()["x"] == (0.0, 1.0)
    shown.add_point(0.2, train_loss=2.0)
    qtbot.waitUntil(lambda: shown.drawn_points("train_loss") == 1, timeout=2000)
    assert shown.view_ranges()["x"] == pytest.approx((0.0, 0.2))  # not kept from before
