"""Editing in the window: context menu, palette drops, undo names, the parameter form, files,
recovery, the close prompt, and the plain net that becomes a ResNet-20 and trains."""

from __future__ import annotations

import json
import math
import shutil

import pytest
import torch
from PySide6.QtCore import Qt
from PySide6.QtGui import QDragEnterEvent, QDragMoveEvent, QDropEvent
from PySide6.QtWidgets import QApplication, QMessageBox

import cnnviz.core.analysis  # noqa: F401 - imported here, the window's background import is instant
import cnnviz.core.sources  # noqa: F401
from cnnviz.core.build import build_module
from cnnviz.ui import files as files_mod
from cnnviz.ui.editor import find_action
from cnnviz.ui.main_window import MainWindow
from cnnviz.ui.palette import ITEM_ROLE, MIME_TYPE

Button = QMessageBox.StandardButton


def _answer(monkeypatch, method: str, button: QMessageBox.StandardButton) -> list[str]:
    """Make ``QMessageBox.<method>`` answer ``button``; returns the texts it was asked."""
    asked: list[str] = []

    def fake(_parent, _title, text, *args, **kwargs):
        asked.append(text)
        return button

    monkeypatch.setattr(QMessageBox, method, staticmethod(fake))
    return asked


@pytest.fixture(autouse=True)
def no_unexpected_dialog(monkeypatch):
    """A message box a test did not answer fails it instead of waiting for a click forever."""

    def unexpected(_parent, title, text, *args, **kwargs):
        raise AssertionError(f"unexpected dialog {title!r}: {text}")

    for method in ("warning", "question", "information", "critical"):
        monkeypatch.setattr(QMessageBox, method, staticmethod(unexpected))


@pytest.fixture
def open_window(qtbot, monkeypatch):
    """Opens windows on a model; at the end they close, unsaved changes discarded."""
    opened: list[MainWindow] = []

    def open_(model: str = "lenet5") -> MainWindow:
        window = MainWindow(model)
        opened.append(window)
        window.show()
        qtbot.waitUntil(lambda: window.core_ready and window.graph is not None, timeout=120_000)
        return window

    yield open_
    _answer(monkeypatch, "warning", Button.Discard)
    for window in opened:
        window.close()
        window.deleteLater()


@pytest.fixture
def window(open_window):
    return open_window()


def _trigger(menu, *path: str) -> None:
    for text in path[:-1]:
        act = find_action(menu, text)
        assert act is not None and act.menu() is not None, f"no submenu {text!r}"
        menu = act.menu()
    act = find_action(menu, path[-1])
    assert act is not None, f"no action {path[-1]!r} in {[a.text() for a in menu.actions()]}"
    assert act.isEnabled()
    act.trigger()


def _text(action) -> str:
    return action.text().replace("&", "")


def test_insert_from_the_context_menu_then_undo_and_redo_by_name(window):
    editor, graph = window.editor, window.graph
    before = graph.to_dict()
    params_before = window.analysis.total_params
    window.select_item("features.c3", False)
    _trigger(
        editor.context_menu("features.c3", False), "Insert after", "Normalisation", "batch_norm2d"
    )

    new = [n for n in graph if n.kind == "batch_norm2d"]
    assert len(new) == 1 and new[0].inputs == ["features.c3"]
    assert graph["features.act3"].inputs == [new[0].name]
    # 16 channels: a weight and a bias per channel (hand count), and torch agrees
    assert window.analysis.total_params == params_before + 2 * 16
    assert sum(p.numel() for p in build_module(graph).parameters()) == params_before + 32
    # every panel shows the new layer, and it is selected
    assert new[0].name in window.layer_table.items
    assert window.graph_view.graph is graph and window.graph_view.selected() == new[0].name
    assert new[0].name in window.graph_view.graph_scene.cards
    name = "Insert batch_norm2d after features.c3"
    assert _text(window.act_undo) == f"Undo {name}" and window.act_undo.isEnabled()
    assert window.windowTitle().endswith("*")

    window.act_undo.trigger()
    assert graph.to_dict() == before
    assert _text(window.act_redo) == f"Redo {name}" and _text(window.act_undo) == "Undo"
    assert not window.windowTitle().endswith("*")
    assert new[0].name not in window.layer_table.items
    window.act_redo.trigger()
    assert [n.name for n in graph if n.kind == "batch_norm2d"] == [new[0].name]
    assert _text(window.act_undo) == f"Undo {name}"


def test_a_palette_drop_on_a_card_inserts_after_that_layer(window, qtbot):
    view = window.graph_view
    view.select("features.act1", False)
    card = view.graph_scene.cards["features.act1"]
    pos = view.mapFromScene(card.sceneBoundingRect().center())
    item = window.editor.palette.view.items["dropout"]
    mime = window.editor.palette.view.mimeData([item])
    assert mime.hasFormat(MIME_TYPE)
    vp = view.viewport()
    copy = Qt.DropAction.CopyAction
    none = Qt.MouseButton.NoButton
    mods = Qt.KeyboardModifier.NoModifier
    enter = QDragEnterEvent(pos, copy, mime, none, mods)
    QApplication.sendEvent(vp, enter)
    assert enter.isAccepted()
    move = QDragMoveEvent(pos, copy, mime, none, mods)
    QApplication.sendEvent(vp, move)
    assert move.isAccepted()
    QApplication.sendEvent(vp, QDropEvent(pos.toPointF(), copy, mime, none, mods))
    qtbot.waitUntil(lambda: any(n.kind == "dropout" for n in window.graph), timeout=5000)
    (drop,) = [n for n in window.graph if n.kind == "dropout"]
    assert drop.inputs == ["features.act1"]
    assert window.graph["features.s2"].inputs == [drop.name]
    assert _text(window.act_undo) == "Undo Insert dropout after features.act1"


def test_palette_enter_inserts_after_the_selection_and_the_filter_narrows(window, qtbot):
    palette = window.editor.palette
    palette.filter_edit.setText("squeeze")
    shown = [
        palette.view.topLevelItem(i).child(j).data(0, ITEM_ROLE)[1]
        for i in range(palette.view.topLevelItemCount())
        for j in range(palette.view.topLevelItem(i).childCount())
        if not palette.view.topLevelItem(i).child(j).isHidden()
    ]
    assert shown == ["squeeze_excitation"]
    window.select_item("features.act3", False)
    palette.view.setCurrentItem(palette.view.items["squeeze_excitation"])
    qtbot.keyClick(palette.view, Qt.Key.Key_Return)
    assert _text(window.act_undo) == "Undo Insert squeeze_excitation after features.act3"
    created = {n.group for n in window.graph if n.group.endswith("squeeze_excitation")}
    assert len(created) == 1
    assert not window.analysis.errors


def test_delete_from_the_menu_reconnects_the_chain(window):
    graph = window.graph
    window.select_item("features.act1", False)
    _trigger(window.editor.context_menu("features.act1", False), "Delete features.act1")
    assert "features.act1" not in graph.nodes
    assert graph["features.s2"].inputs == ["features.c1"]
    assert _text(window.act_undo) == "Undo Delete features.act1"
    assert window.param_editor.node_name == ""  # the deleted layer is no longer selected


def test_the_parameter_form_validates_beside_the_field_and_applies_an_undoable_edit(window):
    editor, form = window.editor, window.param_editor
    window.select_item("features.c3", False)
    assert form.node_name == "features.c3"
    before = window.graph.to_dict()
    form.set_text("kernel_size", "0")
    assert "below the minimum 1" in form.error_text("kernel_size")
    form.set_text("kernel_size", "three")
    assert "write an integer" in form.error_text("kernel_size")
    result = form.apply()
    assert not result.ok and window.graph.to_dict() == before
    assert "fix the value marked in red" in editor.last_message

    form.set_text("kernel_size", "3, 3")
    form.set_text("padding", "1")
    assert form.error_text("kernel_size") == "" and form.error_text("padding") == ""
    assert form.apply().ok
    node = window.graph["features.c3"]
    assert node.params["kernel_size"] == [3, 3] and node.params["padding"] == 1
    a = window.analysis.nodes["features.c3"]
    # 14x14 in, 3x3 window with padding 1: 14x14 out; 6*16*3*3 weights + 16 biases
    assert a.output_shape == (16, 14, 14)
    assert a.params == 6 * 16 * 9 + 16
    conv = torch.nn.Conv2d(6, 16, 3, padding=1)
    assert conv(torch.zeros(1, 6, 14, 14)).shape[1:] == a.output_shape
    assert _text(window.act_undo).startswith(
        "Undo Set kernel_size=[3, 3], padding=1 on features.c3"
    )
    # the form follows the edit, and undo
    assert form.fields["padding"].text() == "1"
    window.act_undo.trigger()
    assert form.fields["padding"].text() == "0" and window.graph.to_dict() == before


def test_an_invalid_edit_is_reported_and_changes_nothing(window):
    before, history = window.graph.to_dict(), list(window.editor.session.history)
    result = window.editor.insert("residual_basic", "flatten")  # needs a feature map
    assert not result.ok
    assert window.editor.last_message.startswith("Cannot insert residual_basic")
    assert "(C, H, W)" in window.statusBar().currentMessage()
    assert window.graph.to_dict() == before and window.editor.session.history == history
    assert not window.windowTitle().endswith("*")


def test_invalid_shapes_mark_the_layer_and_disable_training_with_the_reason(window):
    assert window.training_panel.start_button.isEnabled()
    assert window.editor.set_params("features.c3", kernel_size=7).ok
    # 14 - 7 + 1 = 8, pooled to 4: c5's 5x5 window no longer fits
    errors = dict(window.analysis.errors)
    assert "features.c5" in errors
    window.graph_view.select("features.c5", False)
    assert window.graph_view.graph_scene.cards["features.c5"].text.error
    panel = window.training_panel
    assert not panel.start_button.isEnabled()
    assert "features.c5" in panel.start_button.toolTip()
    assert not window.act_train_start.isEnabled()
    assert "training is off" in window.editor.last_message
    window.act_undo.trigger()
    assert panel.start_button.isEnabled() and not window.analysis.errors


def test_input_size_and_number_of_classes(window):
    assert window.editor.change_num_classes(7).ok
    assert window.graph["classifier.output"].params["out_features"] == 7
    assert window.analysis.nodes["classifier.output"].output_shape == (7,)
    assert _text(window.act_undo) == "Undo Change classes to 7"
    assert window.editor.change_input_size([1, 32, 32]).ok
    # 32 -> c1 (pad 2) 32 -> 16 -> c3 12 -> 6 -> c5 2x2: flatten gives 120*2*2 features
    assert window.analysis.nodes["flatten"].output_shape == (480,)
    assert window.graph["classifier.f6"].params["in_features"] == 480


def test_save_then_open_gives_the_edited_graph(window, tmp_path):
    editor, files = window.editor, window.files
    assert editor.insert("conv_bn_relu", "features.act1").ok
    edited = window.graph.to_dict()
    path = tmp_path / "edited.json"
    assert files.save_as(str(path))
    assert json.loads(path.read_text())["schema_version"] == 1
    assert window.windowTitle() == "cnnviz — edited.json"
    assert window.load_model("lenet5")
    assert window.windowTitle() == "cnnviz — lenet5"
    assert window.open_path(str(path))
    assert window.graph.to_dict() == edited
    assert files.file_path == str(path) and not editor.dirty
    assert editor.set_params("features.c1", out_channels=8).ok
    assert window.windowTitle() == "cnnviz — edited.json*"
    assert files.save()  # Ctrl+S writes the same file again
    assert json.loads(path.read_text())["nodes"][1]["params"]["out_channels"] == 8
    assert not window.windowTitle().endswith("*")


def test_export_python_writes_source_that_builds_the_same_model(window, tmp_path):
    assert window.editor.insert("batch_norm2d", "features.c1").ok
    path = tmp_path / "net.py"
    assert window.files.export_python(str(path))
    namespace: dict = {}
    exec(compile(path.read_text(), str(path), "exec"), namespace)  # our own output
    model = namespace["build_model"]()
    ours = build_module(window.graph)
    assert {k: v.shape for k, v in model.state_dict().items()} == {
        k: v.shape for k, v in ours.state_dict().items()
    }


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ("{not json", "not valid JSON"),
        ('{"schema_version": 99, "name": "x", "nodes": []}', "newer cnnviz"),
    ],
)
def test_a_broken_or_newer_file_gives_a_message_and_keeps_the_model(
    window, tmp_path, content, words
):
    path = tmp_path / "bad.json"
    path.write_text(content)
    graph = window.graph
    assert not window.open_path(str(path))
    box = window.files.message_box
    assert box is not None and box.isVisible() and not box.isModal()
    assert words in box.text() and "bad.json" in box.text()
    assert window.graph is graph


def test_unsaved_work_is_autosaved_removed_on_a_clean_exit_and_offered_after_a_crash(
    qtbot, open_window, monkeypatch, tmp_path
):
    window = open_window()
    files = window.files
    recovery = files_mod.recovery_path()
    assert not files.autosave() and not recovery.exists()  # nothing to keep yet
    assert window.editor.insert("dropout", "features.act3").ok
    edited = window.graph.to_dict()
    assert files.autosave() and recovery.is_file()
    crash_copy = tmp_path / "left-behind.json"
    shutil.copy(recovery, crash_copy)
    # a clean exit (changes discarded at the prompt) leaves no recovery file
    asked = _answer(monkeypatch, "warning", Button.Discard)
    assert window.close()
    assert asked and "not saved" in asked[0]
    assert not recovery.exists()

    # the next start finds the file a crash left and offers it
    shutil.copy(crash_copy, recovery)
    offered = _answer(monkeypatch, "question", Button.Yes)
    second = open_window()
    qtbot.waitUntil(lambda: second.files.recovered, timeout=10_000)
    assert "did not close properly" in offered[0]
    assert second.graph.to_dict()["nodes"] == edited["nodes"]
    assert second.windowTitle().endswith("*") and second.editor.dirty


def test_closing_with_unsaved_changes_asks_save_discard_cancel(window, monkeypatch, tmp_path):
    assert window.editor.insert("relu", "features.c5").ok
    asked = _answer(monkeypatch, "warning", Button.Cancel)
    assert not window.close()
    assert window.isVisible() and len(asked) == 1
    # Save asks for a file name; with one chosen the window closes and the file holds the edit
    target = tmp_path / "kept.json"
    monkeypatch.setattr(
        files_mod.QFileDialog,
        "getSaveFileName",
        staticmethod(lambda *a, **k: (str(target), ARCH_FILTER)),
    )
    _answer(monkeypatch, "warning", Button.Save)
    assert window.close()
    saved = json.loads(target.read_text())
    assert sum(n["kind"] == "relu" for n in saved["nodes"]) == 5


ARCH_FILTER = files_mod.ARCH_FILTER


def test_opening_another_model_with_unsaved_changes_asks_first(window, monkeypatch):
    assert window.editor.insert("relu", "features.c5").ok
    graph = window.graph
    asked = _answer(monkeypatch, "warning", Button.Cancel)
    assert not window.load_model("alexnet")
    assert window.graph is graph and "open alexnet" in asked[0]


def _count_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_plain20_becomes_resnet20_through_the_menu_and_trains(qtbot, open_window):
    """The issue's "done when", through the actions a person clicks."""
    window = open_window("plain20")
    for stage in (1, 2, 3):
        for k in range(3):
            unit = f"layer{stage}.{2 * k}"
            window.select_item(unit, True)
            menu = window.editor.context_menu(unit, True)
            _trigger(menu, f"Wrap {unit} and layer{stage}.{2 * k + 1}")
    graph = window.graph
    assert len(window.editor.session.history) == 9
    assert sum(n.kind == "add" for n in graph) == 9
    from cnnviz.core.zoo.resnet import CifarResNet

    # ResNet-20 with projection shortcuts where the width doubles (He et al.'s option B)
    reference = _count_params(CifarResNet(20, shortcut="B"))
    assert _count_params(build_module(graph)) == reference == window.analysis.params
    assert not window.analysis.errors

    panel = window.training_panel
    assert panel.start_button.isEnabled(), panel.start_button.toolTip()
    panel.shapes_size = 200
    panel.max_steps_per_epoch = 3
    panel.batch_size_edit.setText("16")
    panel.epochs_edit.setText("1")
    with qtbot.waitSignal(panel.sig_run_finished, timeout=180_000):
        assert panel.start(), panel.last_message
    losses = [r.train_loss for r in panel.reports if getattr(r, "train_loss", None) is not None]
    assert losses and all(math.isfinite(x) for x in losses)


def test_edits_wait_while_a_model_trains(window, qtbot):
    panel = window.training_panel
    panel.shapes_size = 200
    panel.max_steps_per_epoch = 200
    panel.batch_size_edit.setText("8")
    panel.epochs_edit.setText("50")
    assert panel.start(), panel.last_message
    before = window.graph.to_dict()
    result = window.editor.insert("relu", "features.c5")
    assert not result.ok and "stop it" in result.message
    assert window.graph.to_dict() == before
    assert not window.act_undo.isEnabled()
    assert panel.shutdown()
    assert window.editor.insert("relu", "features.c5").ok


def test_context_menu_offers_every_edit_for_a_layer(window):
    window.select_item("features.c3", False)
    menu = window.editor.context_menu("features.c3", False)
    texts = [_text(a) for a in menu.actions() if not a.isSeparator()]
    for wanted in (
        "Insert after",
        "Insert before",
        "Insert in parallel",
        "Replace with",
        "Wrap selection in residual connection (1 layer)",
        "Wrap selection in group…",
        "Connect features.c3 to…",
        "Disconnect",
        "Delete features.c3",
    ):
        assert any(t.startswith(wanted) for t in texts), (wanted, texts)
    _trigger(menu, "Disconnect", "to features.act3")
    assert window.graph["features.act3"].inputs == []
    assert "features.act3" in dict(window.analysis.errors)
    window.act_undo.trigger()
    menu = window.editor.context_menu("features.c3", False)
    _trigger(menu, "Replace with", "Convolution", "conv_transpose2d")
    assert window.graph["features.c3"].kind == "conv_transpose2d"
