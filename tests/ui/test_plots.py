"""The live curves: stepwise axis ranges, coalesced redraws, no drawing while hidden."""

from __future__ import annotations

import pytest

from cnnviz.ui.plots import MAX_REDRAWS_PER_S, TrainingCurvesView, nice_ceiling


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


def test_axes_grow_in_steps_not_with_every_point(qtbot, shown):
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


def test_many_points_are_coalesced_into_few_redraws(qtbot, shown):
    before = shown.redraw_count
    for i in range(500):
        shown.add_point(i / 100, train_loss=1.0 / (i + 1))
    qtbot.waitUntil(lambda: shown.drawn_points("train_loss") == 500, timeout=2000)
    assert shown.redraw_count - before <= 2
    # 20 a second at most: a burst over 0.3 s cannot redraw more than about 7 times.
    assert MAX_REDRAWS_PER_S == 20


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
