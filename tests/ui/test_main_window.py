"""The window shell: opens, closes, remembers its layout, shows versions, reports errors."""

from __future__ import annotations

import torch
import torchvision
from PySide6.QtCore import QByteArray, Qt, qVersion
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QApplication

from cnnviz import __version__, paths
from cnnviz.ui import settings as app_settings
from cnnviz.ui.about import AboutDialog
from cnnviz.ui.error_dialog import ErrorDialog, ExceptionReporter
from cnnviz.ui.main_window import MainWindow


def _open_window(qtbot) -> MainWindow:
    window = MainWindow()
    qtbot.addWidget(window)
    window.show()
    qtbot.waitExposed(window)
    return window


def test_window_opens_with_menus_and_docks_and_closes(qtbot):
    window = _open_window(qtbot)
    menus = [a.text().replace("&", "") for a in window.menuBar().actions()]
    assert menus == ["File", "Edit", "View", "Train", "Help"]
    docks = {d.objectName() for d in window.findChildren(type(window.inspector_dock))}
    assert {"models_dock", "inspector_dock", "training_dock", "activations_dock"} <= docks
    qtbot.waitUntil(lambda: window.core_ready, timeout=60_000)
    assert window.status_device.text().startswith(("CPU", "CUDA", "Apple"))
    window.close()
    assert not window.isVisible()


def test_curves_and_activations_are_tabs_on_a_narrow_screen_side_by_side_on_a_wide_one(
    qtbot, monkeypatch
):
    import cnnviz.ui.main_window as main_window

    window = _open_window(qtbot)
    width = window.width()
    qtbot.waitUntil(lambda: window.core_ready, timeout=60_000)
    assert window.width() == width, "the panels stretched the window"
    both = window.training_dock.minimumSizeHint().width()
    both += window.activations_dock.minimumSizeHint().width()
    # The offscreen screen is 800 pixels wide: far less than the two panels need.
    assert QGuiApplication.primaryScreen().availableGeometry().width() < both
    assert window.tabifiedDockWidgets(window.training_dock) == [window.activations_dock]
    window.close()

    # With a slack that makes any screen wide enough: side by side, both visible.
    monkeypatch.setattr(main_window, "BOTTOM_DOCKS_SLACK", -10 * both)
    app_settings.settings().remove("window/state")
    window = _open_window(qtbot)
    qtbot.waitUntil(lambda: window.core_ready, timeout=60_000)
    assert window.tabifiedDockWidgets(window.training_dock) == []
    assert window.dockWidgetArea(window.activations_dock) == Qt.DockWidgetArea.BottomDockWidgetArea
    qtbot.waitUntil(lambda: window.activations_dock.visibleRegion().isEmpty() is False)
    assert window.training_dock.x() + window.training_dock.width() <= window.activations_dock.x()
    window.close()


def test_standard_shortcuts(qtbot):
    window = _open_window(qtbot)
    assert window.act_open.shortcut().toString() == "Ctrl+O"
    assert window.act_undo.shortcut().toString() == "Ctrl+Z"
    assert window.act_redo.shortcut().toString() == "Ctrl+Shift+Z"
    assert window.act_quit.shortcut().toString() == "Ctrl+Q"
    window.close()


def test_geometry_and_dock_layout_are_restored(qtbot):
    first = _open_window(qtbot)
    first.resize(640, 480)  # within the offscreen screen (800x600)
    first.inspector_dock.hide()
    first.close()
    store = app_settings.settings()
    assert isinstance(store.value("window/state"), QByteArray)
    second = _open_window(qtbot)
    assert (second.width(), second.height()) == (640, 480)
    assert second.inspector_dock.isHidden()
    second.close()


def test_recent_files_are_kept_newest_first(qtbot, tmp_path):
    from cnnviz.core.sources import load_source

    window = _open_window(qtbot)
    qtbot.waitUntil(lambda: window.core_ready, timeout=60_000)
    for name in ("a.json", "b.json"):
        load_source("lenet5", size="teaching").save(tmp_path / name)
    for name in ("a.json", "b.json", "a.json"):
        assert window.open_path(str(tmp_path / name))
    assert not window.open_path(str(tmp_path / "missing.json"))
    assert app_settings.recent_files() == [str(tmp_path / "a.json"), str(tmp_path / "b.json")]
    titles = [a.text() for a in window.recent_menu.actions() if not a.isSeparator()]
    assert titles[:2] == ["a.json", "b.json"]
    window.close()


def test_about_dialog_shows_the_versions(qtbot):
    dialog = AboutDialog()
    qtbot.addWidget(dialog)
    for version in (__version__, torch.__version__, torchvision.__version__, qVersion()):
        assert version in dialog.text
    assert "CPU" in dialog.text or "CUDA" in dialog.text or "MPS" in dialog.text


def test_unhandled_exception_shows_a_dialog_logs_it_and_the_app_goes_on(qtbot):
    reporter = ExceptionReporter()
    try:
        raise ValueError("kernel size must be positive, got -3")
    except ValueError as exc:
        reporter.handle(type(exc), exc, exc.__traceback__)
    qtbot.waitUntil(lambda: bool(reporter.reported), timeout=2000)
    assert reporter.reported == ["ValueError: kernel size must be positive, got -3"]
    dialogs = [w for w in QApplication.topLevelWidgets() if isinstance(w, ErrorDialog)]
    assert len(dialogs) == 1 and dialogs[0].isVisible()
    dialog = dialogs[0]
    qtbot.mouseClick(dialog.copy_button, Qt.MouseButton.LeftButton)
    assert "kernel size must be positive" in QGuiApplication.clipboard().text()
    assert "Traceback" in QGuiApplication.clipboard().text()
    assert "kernel size must be positive" in paths.log_file().read_text()
    # a second error while the dialog is open joins it instead of stacking dialogs
    try:
        raise RuntimeError("second")
    except RuntimeError as exc:
        reporter.handle(type(exc), exc, exc.__traceback__)
    qtbot.waitUntil(lambda: len(reporter.reported) == 2, timeout=2000)
    assert (
        sum(isinstance(w, ErrorDialog) and w.isVisible() for w in QApplication.topLevelWidgets())
        == 1
    )
    assert "second" in dialog.details
    dialog.close()
    qtbot.waitUntil(lambda: reporter._dialog is None, timeout=2000)


def test_exceptions_in_other_threads_reach_the_gui_thread(qtbot):
    import threading

    reporter = ExceptionReporter(show_dialogs=False)
    reporter.install()
    try:
        thread = threading.Thread(target=lambda: 1 / 0)
        thread.start()
        thread.join()
        qtbot.waitUntil(lambda: bool(reporter.reported), timeout=2000)
    finally:
        reporter.uninstall()
    assert reporter.reported[0].startswith("ZeroDivisionError")


def test_default_model_is_shown_with_worked_formulas(qtbot):
    window = _open_window(qtbot)
    qtbot.waitUntil(lambda: window.analysis is not None, timeout=60_000)
    assert window.central.currentWidget() is window.model_tabs
    assert window.model_tabs.currentWidget() is window.graph_view
    # LeNet-5 at teaching size: C1 is 6 5x5 filters with padding 2 on a 1x28x28 input
    window.layer_table.select("features.c1")
    text = window.inspector.toPlainText()
    assert "(28 - 5 + 2*2)/1) + 1 = 28" in text  # hand calculation: (28-5+4)/1+1 = 28
    assert "6*(1*5*5 + 1) = 156" in text
    row = window.layer_table.items["features.c1"]
    assert (row.text(2), row.text(3)) == ("(6, 28, 28)", "156")
    window.layer_table.select("classifier")
    # the classifier group: f6 (120*84 + 84 = 10,164) plus output (84*10 + 10 = 850)
    assert "11,014" in window.inspector.toPlainText()
    window.close()


def test_a_bad_model_name_is_explained_and_the_current_model_kept(qtbot):
    window = _open_window(qtbot)
    qtbot.waitUntil(lambda: window.analysis is not None, timeout=60_000)
    before = window.analysis
    assert not window.load_model("resnet5O")
    assert window.analysis is before
    assert "resnet50" in window.picker.error.text()
    window.close()
