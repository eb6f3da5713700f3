"""Probe views: the grid, the enlarged channel, receptive fields, following selection, live."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PySide6.QtCore import QObject, Qt, Signal

from cnnviz.core.analysis import analyse
from cnnviz.core.build import build_module
from cnnviz.core.data import load_dataset
from cnnviz.core.probes import FilterSnapshot, ProbeBatch, Prober
from cnnviz.core.sources import load_source
from cnnviz.ui import colormaps
from cnnviz.ui.activation_view import ActivationView
from cnnviz.ui.cam_view import CamView, ErrorsView
from cnnviz.ui.filter_view import FilterView, filter_tiles
from cnnviz.ui.probe_panel import ProbePanel


@pytest.fixture(scope="module")
def lenet():
    torch.manual_seed(0)
    graph = load_source("lenet5", size="teaching")
    data = load_dataset("shapes", train_size=300)
    return graph, analyse(graph), build_module(graph), data


class FakeTrainingPanel(QObject):
    """The training panel's interface to the probes, driven by the test."""

    sig_run_started = Signal(object, object)
    sig_run_finished = Signal(str)
    sig_probe = Signal(object)
    sig_model_built = Signal(object)

    def __init__(self, model, data) -> None:
        super().__init__()
        self.model, self.data = model, data
        self.training = False
        self.observer = None

    def ensure_model(self):
        return self.model

    def ensure_dataset(self):
        return self.data

    def set_observer(self, fn) -> None:
        self.observer = fn

    def is_training(self) -> bool:
        return self.training


class _Report:
    kind = "step"
    epoch = 1

    def __init__(self, step: int) -> None:
        self.global_step = step


def _panel(qtbot, lenet):
    graph, analysis, model, data = lenet
    panel = ProbePanel()
    qtbot.addWidget(panel)
    fake = FakeTrainingPanel(model, data)
    panel.attach_training_panel(fake)
    panel.resize(1200, 360)
    panel.show()
    qtbot.waitExposed(panel)
    panel.set_model(graph, analysis)
    return panel, fake


def test_grid_shows_every_channel_with_its_statistics(qtbot, lenet):
    graph, analysis, model, data = lenet
    snap = Prober(model, graph, ProbeBatch.from_dataset(data, n=4), analysis).activation(
        "features.act3"
    )
    view = ActivationView()
    qtbot.addWidget(view)
    view.resize(900, 400)
    view.show()
    view.set_snapshot(snap)
    assert view.grid.tile_count() == 16
    maps = snap.maps  # independent statistics straight from the maps
    for c in range(16):
        zeros = (maps[:, c] == 0).mean() * 100
        text = view.grid.stat_text(c)
        assert text.endswith(f"{zeros:.0f}% 0")
        assert text.startswith(f"{maps[:, c].mean():.2f}"[:4]) or "e" in text.split()[0]
    assert "16 × 10 × 10" in view.title.text()


def test_click_enlarges_a_channel(qtbot, lenet):
    graph, analysis, model, data = lenet
    snap = Prober(model, graph, ProbeBatch.from_dataset(data, n=2), analysis).activation(
        "features.act1"
    )
    view = ActivationView()
    qtbot.addWidget(view)
    view.resize(900, 400)
    view.show()
    qtbot.waitExposed(view)
    view.set_snapshot(snap)
    qtbot.mouseClick(view.grid, Qt.MouseButton.LeftButton, pos=view.grid.tile_rect(3).center())
    assert view.channel == 3 and view.grid.selected == 3
    assert "channel 3" in view.detail_label.text()
    # The enlarged map is channel 3 of image 0, coloured per channel.
    m = snap.maps[0, 3]
    expected = colormaps.apply(m, colormaps.VIRIDIS, m.min(), m.max())
    image = view.detail._image
    y, x = np.unravel_index(np.argmax(m), m.shape)
    pixel = image.pixelColor(int(x), int(y))
    assert (pixel.red(), pixel.green(), pixel.blue()) == tuple(int(v) for v in expected[y, x])
    # Another probe image changes the map shown.
    view.select_image(1)
    assert view.image_index == 1


def test_dead_channel_is_marked(qtbot, lenet):
    graph, analysis, model, data = lenet
    prober = Prober(model, graph, ProbeBatch.from_dataset(data, n=2), analysis)
    conv = model.get_submodule("features.c1")
    saved = conv.bias.detach().clone()
    with torch.no_grad():
        conv.bias[2] = -1e4
    try:
        snap = prober.activation("features.act1")
    finally:
        with torch.no_grad():
            conv.bias.copy_(saved)
    view = ActivationView()
    qtbot.addWidget(view)
    view.set_snapshot(snap)
    assert view.grid.is_dead(2) and not view.grid.is_dead(0)
    assert "1 dead" in view.title.text()


def test_click_on_a_unit_draws_its_receptive_field(qtbot, lenet):
    panel, _fake = _panel(qtbot, lenet)
    panel.show_layer("features.c3")
    view = panel.activation_view
    assert view.snapshot.layer == "features.c3"
    view.select_channel(4)
    detail = view.detail
    qtbot.mouseClick(detail, Qt.MouseButton.LeftButton, pos=detail.unit_rect(3, 6).center())
    result = panel.rf_side.result
    assert result is not None and result.channel == 4 and result.unit == (3, 6)
    # c3 of LeNet-5: size 14, jump 2, padding 2 -> rows 2*3-2 .. +13, columns 2*6-2 .. +13.
    assert result.box == (4.0, 10.0, 17.0, 23.0)
    assert panel.rf_view.result is result
    # A border unit reaches into the padding, drawn outside the image.
    qtbot.mouseClick(detail, Qt.MouseButton.LeftButton, pos=detail.unit_rect(0, 0).center())
    assert panel.rf_side.result.box == (-2.0, -2.0, 11.0, 11.0)
    assert "padding" in panel.rf_side.caption.text()
    image_rect = panel.rf_side.image_view.pixel_rect(0, 0, 27, 27)
    box_rect = panel.rf_side.image_view.pixel_rect(-2, -2, 11, 11)
    assert box_rect.left() < image_rect.left() and box_rect.top() < image_rect.top()


def test_panel_follows_the_selection(qtbot, lenet):
    panel, _fake = _panel(qtbot, lenet)
    assert panel.activation_view.snapshot.layer == "features.c1"  # the first convolution
    panel.show_layer("features.act3")
    assert panel.activation_view.snapshot.layer == "features.act3"
    assert panel.filter_view.selected.layer == "features.c3"
    assert panel.filter_view.first.layer == "features.c1"
    panel.show_layer("features", is_group=True)  # a group shows its output
    assert panel.activation_view.snapshot.layer == "features.act5"
    panel.show_layer("classifier.output")
    snap = panel.activation_view.snapshot
    assert not snap.spatial and snap.channels == 10


def test_live_update_from_the_observer_and_replay(qtbot, lenet):
    graph, analysis, model, data = lenet
    panel, fake = _panel(qtbot, lenet)
    fake.training = True
    fake.sig_run_started.emit(model, data)
    assert panel.observer is not None
    first = fake.observer(model, _Report(10))  # what the training thread would do
    fake.sig_probe.emit(first)
    assert panel.activation_view.snapshot is first.activations
    assert len(panel.timeline) == 1
    # A selection during training goes to the observer, not to a probe in this thread.
    panel.show_layer("features.act3")
    assert panel.observer.layer == "features.act3"
    assert panel.activation_view.snapshot is first.activations
    second = fake.observer(model, _Report(11))
    assert second.activations.layer == "features.act3"
    fake.sig_probe.emit(second)
    assert panel.activation_view.snapshot is second.activations
    assert "step 11" in panel.step_label.text()
    # The slider replays.
    panel.slider.setValue(0)
    assert panel.activation_view.snapshot is first.activations
    assert not panel.live.isChecked()
    # A unit clicked during training is answered at the next report.
    panel.activation_view.sig_unit_clicked.emit("features.c1", 1, 5, 5, 0)
    assert panel.rf_side.result is None
    third = fake.observer(model, _Report(12))
    fake.sig_probe.emit(third)
    assert panel.rf_side.result.box == (3.0, 3.0, 7.0, 7.0)
    fake.training = False
    fake.sig_run_finished.emit("finished")
    assert panel.observer is None


def test_filter_view_colour_tiles_and_deeper_layers(qtbot):
    rng = np.random.default_rng(0)
    w = rng.normal(size=(4, 3, 3, 3)).astype(np.float32)
    tiles, _ = filter_tiles(FilterSnapshot("c", 0, w, first_layer=True), per_filter=True)
    assert tiles.shape == (1, 4, 3, 3, 3)
    f = w[2]
    expected = ((f - f.min()) / (f.max() - f.min()) * 255 + 0.5).astype(np.uint8)
    np.testing.assert_array_equal(tiles[0, 2], expected.transpose(1, 2, 0))
    deep = rng.normal(size=(5, 7, 3, 3)).astype(np.float32)
    tiles, note = filter_tiles(FilterSnapshot("d", 0, deep), per_filter=False)
    assert tiles.shape == (5, 7, 3, 3, 3) and "rows: output" in note
    # The largest magnitude is the end of the diverging map; zero would be its white middle.
    i = np.unravel_index(np.argmax(np.abs(deep)), deep.shape)
    end = colormaps.DIVERGING[255 if deep[i] > 0 else 0]
    np.testing.assert_array_equal(tiles[i], end)
    view = FilterView()
    qtbot.addWidget(view)
    first = FilterSnapshot("c1", 3, w, first_layer=True)
    view.set_filters(first, FilterSnapshot("c3", 3, deep))
    assert "4 filters" not in view.first_pane.heading.text()  # hidden: drawn when shown
    view.show()
    qtbot.waitExposed(view)
    assert "4 filters of 3×3 on 3 channels" in view.first_pane.heading.text()
    assert not view.selected_pane.isHidden()
    view.set_filters(first, first)
    assert view.selected_pane.isHidden()


def test_cam_and_errors_views_show_results(qtbot, lenet):
    graph, analysis, model, data = lenet
    prober = Prober(model, graph, ProbeBatch.from_dataset(data, n=3), analysis)
    cam = CamView()
    qtbot.addWidget(cam)
    cam.set_classes(tuple(data.classes))
    assert cam.class_index is None
    cam.class_box.setCurrentIndex(3)
    assert cam.class_index == 2
    cam.set_result(prober.grad_cam(None, cam.class_index))
    assert data.classes[2] in cam.title.text()
    errors = ErrorsView()
    qtbot.addWidget(errors)
    result = prober.confusion(data)
    errors.set_result(result)
    assert f"{result.accuracy * 100:.1f}%" in errors.title.text()
    assert f"{len(data.val)} images" in errors.title.text()
