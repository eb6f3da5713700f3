"""The training panel: runs in its worker, curves, pause/stop, errors, probes, CSV, closing."""

from __future__ import annotations

import csv
import dataclasses
import math
import time

import pytest
import torch

from cnnviz.core.analysis import analyse
from cnnviz.core.sources import load_source
from cnnviz.core.training import Report
from cnnviz.ui.training_panel import TrainingPanel

RUN_TIMEOUT_MS = 120_000


@pytest.fixture(scope="module")
def lenet():
    graph = load_source("lenet5", size="teaching")
    return graph, analyse(graph)


@pytest.fixture
def panel(qtbot, lenet):
    view = TrainingPanel()
    qtbot.addWidget(view)
    view.set_model(*lenet)
    view.shapes_size = 300
    view.max_steps_per_epoch = 3
    view.batch_size_edit.setText("16")
    view.epochs_edit.setText("2")
    # Shown: hidden curves do not redraw (they catch up when shown), and these tests look at
    # what is drawn.
    view.show()
    qtbot.waitExposed(view)
    yield view
    assert view.shutdown()


def _run(qtbot, view: TrainingPanel) -> str:
    with qtbot.waitSignal(view.sig_run_finished, timeout=RUN_TIMEOUT_MS) as blocker:
        assert view.start(), view.last_message
    return blocker.args[0]


def _val_loss_and_accuracy(model, data) -> tuple[float, float]:
    images, labels = data.val.batch(list(range(len(data.val))))
    model.eval()
    with torch.no_grad():
        logits = model(images)
    model.train()
    loss = torch.nn.functional.cross_entropy(logits, labels).item()
    return loss, (logits.argmax(1) == labels).float().mean().item()


def test_a_run_draws_the_curves_and_the_last_point_is_the_models_validation_loss(qtbot, panel):
    order = []
    panel.sig_run_started.connect(
        lambda model, data: order.append(("started", panel.curves.points("train_loss")[0].size))
    )
    assert _run(qtbot, panel) == "finished"
    assert order == [("started", 0)], "the run starts before its first curve point"
    x_val, val_loss = panel.curves.points("val_loss")
    assert list(x_val) == [1.0, 2.0]
    model, data = panel.ensure_model(), panel.ensure_dataset()
    loss, accuracy = _val_loss_and_accuracy(model, data)
    assert val_loss[-1] == pytest.approx(loss, rel=1e-4)
    assert panel.curves.points("val_accuracy")[1][-1] == pytest.approx(100 * accuracy)
    x_train, _ = panel.curves.points("train_loss")
    assert x_train.size >= 2 and x_train[-1] == 2.0
    assert panel.curves.points("lr")[1][0] == pytest.approx(1e-3)
    qtbot.waitUntil(lambda: panel.curves.drawn_points("val_loss") == 2, timeout=2000)
    assert "Finished 2 epoch(s)" in panel.last_message
    assert panel.progress.value() == 1000

    # Start again: the same module goes on, and the curves continue after epoch 2.
    weights = [p.detach().clone() for p in model.parameters()]
    assert _run(qtbot, panel) == "finished"
    assert panel.ensure_model() is model
    assert any(not torch.equal(a, b) for a, b in zip(weights, model.parameters(), strict=True))
    assert list(panel.curves.points("val_loss")[0]) == [1.0, 2.0, 3.0, 4.0]


def test_pause_and_stop_take_effect_within_one_batch(qtbot, panel):
    panel.max_steps_per_epoch = None
    panel.shapes_size = 2_000
    panel.epochs_edit.setText("20")
    steps: list[int] = []
    panel.set_observer(lambda model, report: steps.append(report.global_step))
    assert panel.start()
    qtbot.waitUntil(lambda: len(steps) >= 2, timeout=RUN_TIMEOUT_MS)
    asked_at = len(steps)
    panel.pause()
    assert panel.is_paused() and panel.pause_button.text() == "Resume"
    qtbot.wait(300)  # the batch under way may finish, no other may start
    paused_at = len(steps)
    assert paused_at <= asked_at + 1
    qtbot.wait(400)
    assert len(steps) == paused_at, "a batch ran while paused"
    panel.resume()
    qtbot.waitUntil(lambda: len(steps) > paused_at + 1, timeout=RUN_TIMEOUT_MS)
    with qtbot.waitSignal(panel.sig_run_finished, timeout=RUN_TIMEOUT_MS) as blocker:
        stop_at = len(steps)
        panel.stop()
    assert blocker.args == ["stopped"]
    last = panel.reports[-1]
    assert last.kind == "stopped"
    assert last.global_step <= stop_at + 1
    assert not panel.is_training() and panel.start_button.isEnabled()
    assert "weights and the curves are kept" in panel.last_message


def test_a_huge_learning_rate_shows_the_nan_message_and_keeps_the_model(qtbot, panel):
    panel.optimizer_combo.setCurrentIndex(panel.optimizer_combo.findData("sgd"))
    panel.lr_edit.setText("1e6")
    panel.max_steps_per_epoch = 10
    model = panel.ensure_model()
    assert _run(qtbot, panel) == "failed"
    assert "loss became" in panel.last_message and "smaller learning rate" in panel.last_message
    assert "model and its curves are kept" in panel.last_message
    assert panel.ensure_model() is model
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert panel.reports[-1].kind == "failed"
    assert panel.progress.format() == "Failed"


@pytest.mark.parametrize(
    ("edit", "text", "expected"),
    [
        ("lr_edit", "-1", "lr must be a finite number > 0, got -1.0"),
        ("momentum_edit", "1.5", "momentum must be in [0, 1), got 1.5"),
        ("batch_size_edit", "abc", "batch_size must be an integer, got 'abc'"),
        ("epochs_edit", "0", "epochs must be an integer >= 1, got 0"),
    ],
)
def test_an_invalid_setting_shows_the_error_next_to_its_field(panel, edit, text, expected):
    getattr(panel, edit).setText(text)
    field = edit.removesuffix("_edit")
    label = panel._field_errors[field]
    assert label.text() == expected
    assert label.isVisibleTo(panel)
    assert not panel.start()
    assert not panel.is_training()
    getattr(panel, edit).setText("1" if field != "momentum" else "0.5")
    assert not label.isVisibleTo(panel)


def test_observer_results_arrive_through_sig_probe(qtbot, panel):
    seen_models = []

    def observer(model, report):
        seen_models.append(model)
        return ("probe", report.kind, report.global_step)

    panel.set_observer(observer)
    probes = []
    panel.sig_probe.connect(probes.append)
    assert _run(qtbot, panel) == "finished"
    qtbot.wait(10)
    kinds = [p[1] for p in probes]
    # One per report: 3 steps and an epoch, twice, then the final report.
    assert kinds == ["step"] * 3 + ["epoch"] + ["step"] * 3 + ["epoch", "finished"]
    assert all(m is panel.ensure_model() for m in seen_models)


def test_an_observer_that_raises_is_switched_off_and_training_goes_on(qtbot, panel):
    calls = []

    def observer(model, report):
        calls.append(report)
        raise ValueError("probe broke")

    panel.set_observer(observer)
    assert _run(qtbot, panel) == "finished"
    assert len(calls) == 1, "the observer is switched off after its first error"
    assert panel.reports[-1].kind == "finished" and panel.reports[-1].epoch == 2
    assert "probe failed" in panel.general_error.text()
    assert "probe broke" in panel.general_error.text()
    assert panel.general_error.isVisibleTo(panel)


def test_metrics_csv_has_a_row_per_report_shown(qtbot, panel, tmp_path):
    assert _run(qtbot, panel) == "finished"
    path = panel.export_csv(tmp_path / "metrics.csv")
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == [f.name for f in dataclasses.fields(Report)]
    assert len(rows) == len(panel.reports)
    assert [r["kind"] for r in rows][-1] == "finished"
    loss, _ = _val_loss_and_accuracy(panel.ensure_model(), panel.ensure_dataset())
    assert float(rows[-1]["val_loss"]) == pytest.approx(loss, rel=1e-4)


def test_checkpoint_save_and_load_round_trip(qtbot, panel, tmp_path):
    model = panel.ensure_model()
    saved = {k: v.clone() for k, v in model.state_dict().items()}
    panel.save_checkpoint(tmp_path / "w.pt")
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    panel.load_checkpoint(tmp_path / "w.pt")
    for key, value in model.state_dict().items():
        assert torch.equal(value, saved[key]), key


def test_training_is_disabled_with_a_reason_when_the_graph_has_errors(qtbot, lenet):
    view = TrainingPanel()
    qtbot.addWidget(view)
    assert not view.start_button.isEnabled()
    assert "Open a model" in view.start_button.toolTip()
    graph, analysis = lenet
    broken = dataclasses.replace(analysis, errors=(("features.conv2", "needs 6 channels"),))
    view.set_model(graph, broken)
    assert not view.start_button.isEnabled()
    assert "features.conv2: needs 6 channels" in view.start_button.toolTip()
    assert not view.start()
    view.set_model(graph, analysis)
    assert view.start_button.isEnabled()
    assert view.shutdown()


def test_a_data_set_of_another_shape_is_named_and_missing_files_offer_a_download(
    qtbot, panel, tmp_path
):
    panel.folder_edit.setText(str(tmp_path))
    panel.dataset_combo.setCurrentIndex(panel.dataset_combo.findData("cifar10"))
    assert _run(qtbot, panel) == "failed"
    assert "CIFAR-10 images are 3x32x32, but the model takes 1x28x28" in panel.last_message
    assert not panel.download_button.isVisibleTo(panel)
    panel.dataset_combo.setCurrentIndex(panel.dataset_combo.findData("mnist"))
    assert _run(qtbot, panel) == "failed"
    assert str(tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte") in panel.last_message
    assert panel.download_button.isVisibleTo(panel)
    assert list(tmp_path.iterdir()) == [], "nothing is downloaded without the button"


def test_closing_the_window_mid_training_joins_the_worker(qtbot):
    from cnnviz.ui.main_window import MainWindow

    window = MainWindow()
    qtbot.addWidget(window)
    window.show()
    qtbot.waitUntil(lambda: window.core_ready and window.graph is not None, timeout=60_000)
    panel = window.training_panel
    assert window.act_train_start.isEnabled() and not window.act_train_stop.isEnabled()
    panel.shapes_size = 2_000
    panel.epochs_edit.setText("50")
    window.act_train_start.trigger()
    qtbot.waitUntil(lambda: len(panel.reports) > 0, timeout=RUN_TIMEOUT_MS)
    assert window.act_train_stop.isEnabled() and window.act_train_pause.isEnabled()
    assert not window.act_train_start.isEnabled()
    worker = panel.worker
    assert worker is not None and worker.isRunning()
    start = time.perf_counter()
    window.close()
    took = time.perf_counter() - start
    assert not worker.isRunning()
    assert not panel.is_training()
    assert took < 30, f"closing took {took:.1f} s"
    assert panel.reports[-1].kind == "stopped"
    assert math.isfinite(panel.reports[-1].train_loss)


def test_opening_another_model_while_training_asks_first(qtbot, monkeypatch):
    from PySide6.QtWidgets import QMessageBox

    from cnnviz.ui.main_window import MainWindow

    window = MainWindow()
    qtbot.addWidget(window)
    window.show()
    qtbot.waitUntil(lambda: window.core_ready and window.graph is not None, timeout=60_000)
    panel = window.training_panel
    panel.shapes_size = 2_000
    panel.epochs_edit.setText("50")
    assert panel.start()
    qtbot.waitUntil(lambda: len(panel.reports) > 0, timeout=RUN_TIMEOUT_MS)
    answers = []

    def answer(choice):
        def ask(*args, **kwargs):
            answers.append(args[1])
            return choice

        return ask

    monkeypatch.setattr(QMessageBox, "question", answer(QMessageBox.StandardButton.No))
    assert not window.load_model("resnet18")
    assert answers == ["Training is running"]
    assert panel.is_training() and window.graph.name == "lenet5"
    monkeypatch.setattr(QMessageBox, "question", answer(QMessageBox.StandardButton.Yes))
    assert window.load_model("resnet18")
    assert not panel.is_training() and panel.graph is window.graph
    assert panel.reports == [] and panel.curves.points("train_loss")[0].size == 0
    window.close()


def test_the_download_button_loads_with_download_only_when_clicked(qtbot, panel, monkeypatch):
    from cnnviz.core.data import load_dataset

    calls = []
    tiny = load_dataset("shapes", train_size=100)

    def fake_load(key, download):
        calls.append((key[0], download))
        return tiny

    panel.dataset_combo.setCurrentIndex(panel.dataset_combo.findData("mnist"))
    monkeypatch.setattr(panel, "_load_data", fake_load)
    panel.download_button.show()
    panel.download_button.click()
    qtbot.waitUntil(lambda: panel._download_worker is None, timeout=10_000)
    assert calls == [("mnist", True)]
    assert panel.ensure_dataset() is tiny
    assert "ready" in panel.last_message
