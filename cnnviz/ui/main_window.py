"""The main window: menus, the central graph area, docks and the status bar."""

from __future__ import annotations

import time
from pathlib import Path

from PySide6.QtCore import QByteArray, QEvent, QObject, Qt, QTimer, Signal, Slot
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QDockWidget,
    QFileDialog,
    QInputDialog,
    QLabel,
    QMainWindow,
    QMenu,
    QMessageBox,
    QProgressBar,
    QStackedWidget,
    QWidget,
)

from cnnviz.ui import settings as app_settings
from cnnviz.ui.workers import ImportWorker

# Bumped when the default arrangement of the docks changes: a saved arrangement of another
# version is ignored, so that users get the new one.
DOCK_LAYOUT_VERSION = 2
# Pixels beyond the two panels' minimum widths that a screen needs for the training curves and
# the activations to sit side by side (otherwise they are tabs).
BOTTOM_DOCKS_SLACK = 250

OPEN_FILTER = "Architectures and models (*.json *.py);;Architecture files (*.json);;Python (*.py)"


class _FirstPaintWatcher(QObject):
    """Notices the first paint of any widget inside the window (for the startup figure)."""

    def __init__(self, window: MainWindow):
        super().__init__(window)
        self._window = window

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt's name
        if (
            event.type() == QEvent.Type.Paint
            and isinstance(watched, QWidget)
            and watched.window() is self._window
        ):
            QApplication.instance().removeEventFilter(self)
            self._window.first_paint_time = time.time()
            QTimer.singleShot(0, self._window.sig_first_paint.emit)
        return False


def _placeholder(text: str) -> QLabel:
    label = QLabel(text)
    label.setAlignment(Qt.AlignmentFlag.AlignCenter)
    label.setWordWrap(True)
    label.setObjectName("placeholder")
    label.setMargin(16)
    return label


class MainWindow(QMainWindow):
    """The cnnviz window. Heavy modules load in the background after the first paint."""

    sig_first_paint = Signal()
    sig_core_ready = Signal()
    # A model was opened (or changed): (ArchGraph, Analysis). Panels follow it via this signal.
    sig_model_loaded = Signal(object, object)
    # The selected layer or group changed: (name, is_group); "" when nothing is selected.
    sig_selection_changed = Signal(str, bool)
    # A model could not be opened: (source, message), after the message is in the status bar.
    sig_load_failed = Signal(str, str)

    def __init__(self, model: str = "lenet5", input_shape: tuple[int, ...] | None = None):
        super().__init__()
        self.setWindowTitle("cnnviz")
        self.resize(1400, 900)
        self.first_paint_time: float | None = None
        self.core_ready = False
        self.requested_model = model
        self.requested_input = input_shape
        self._import_worker: ImportWorker | None = None
        self._closing = False
        self.graph = None
        self.current_source = ""  # what load_model opened last (zoo name, file path)
        self.analysis = None
        self._selection: tuple[str, bool] = ("", False)

        self._build_central()
        self._build_docks()
        self._build_actions()
        self._build_menus()
        self._build_status_bar()
        self._restore_settings()

        self._paint_watcher = _FirstPaintWatcher(self)
        QApplication.instance().installEventFilter(self._paint_watcher)
        self.sig_first_paint.connect(self._on_window_first_paint)

    # ----------------------------------------------------------------- construction
    def _build_central(self) -> None:
        self.central = QStackedWidget()
        self.loading_page = _placeholder(
            "<h2>cnnviz</h2><p>Loading PyTorch and the model zoo…</p>"
            "<p>The window is yours already; the network appears in a moment.</p>"
        )
        self.central.addWidget(self.loading_page)
        self.setCentralWidget(self.central)

    def _add_dock(
        self, title: str, name: str, area: Qt.DockWidgetArea, body: QWidget
    ) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(name)  # saveState() needs stable object names
        dock.setWidget(body)
        self.addDockWidget(area, dock)
        return dock

    def _build_docks(self) -> None:
        left = Qt.DockWidgetArea.LeftDockWidgetArea
        right = Qt.DockWidgetArea.RightDockWidgetArea
        bottom = Qt.DockWidgetArea.BottomDockWidgetArea
        self.models_dock = self._add_dock(
            "Models", "models_dock", left, _placeholder("The model zoo loads with PyTorch…")
        )
        self.inspector_dock = self._add_dock(
            "Inspector",
            "inspector_dock",
            right,
            _placeholder("Select a layer to see its shapes, parameters, MACs and receptive field."),
        )
        self.training_dock = self._add_dock(
            "Training",
            "training_dock",
            bottom,
            _placeholder("Training: loss and accuracy curves appear here while a model trains."),
        )
        self.activations_dock = self._add_dock(
            "Activations",
            "activations_dock",
            bottom,
            _placeholder("Activation maps, filters and receptive fields of the selected layer."),
        )
        self.palette_dock = self._add_dock(
            "Palette", "palette_dock", left, _placeholder("Layers and blocks to insert…")
        )
        # Models and the palette share the left column as tabs (each gets its full height);
        # the curves and the activations sit side by side, so that a class sees the loss fall
        # and the filters form at the same time.
        # the curves and the activations sit side by side on a screen wide enough for both
        # panels, as tabs otherwise (_arrange_bottom_docks, once the panels exist).
        self.tabifyDockWidget(self.models_dock, self.palette_dock)
        self.models_dock.raise_()
        self.splitDockWidget(self.training_dock, self.activations_dock, Qt.Orientation.Horizontal)
        self.resizeDocks(
            [self.models_dock, self.inspector_dock], [260, 340], Qt.Orientation.Horizontal
        )
        self.resizeDocks([self.training_dock], [330], Qt.Orientation.Vertical)
        self._restored_dock_state = False

    def _arrange_bottom_docks(self, width: int, height: int) -> bool:
        """Training and activations side by side when the screen is wide enough, else tabs.

        Only for the default arrangement: a restored one is the user's. ``width`` and
        ``height`` are the window's size before the panels were put in. Returns True when they
        are side by side.
        """
        if self._restored_dock_state:
            if self.width() > width:
                self.resize(width, height)
            return False
        screen = self.screen() or QApplication.primaryScreen()
        available = screen.availableGeometry().width() if screen is not None else 0
        training_min = self.training_dock.minimumSizeHint().width()
        activations_min = self.activations_dock.minimumSizeHint().width()
        # Both at their minimum would be cramped: the curves want some room beyond it.
        needed = training_min + activations_min + BOTTOM_DOCKS_SLACK
        if available < needed:
            self.tabifyDockWidget(self.training_dock, self.activations_dock)
            self.training_dock.raise_()
            self.resize(width, height)
            return False
        self.resize(max(width, needed), height)
        # Once the new layout has settled (the docks' widgets were just replaced).
        QTimer.singleShot(0, self._share_bottom_docks)
        return True

    def _share_bottom_docks(self) -> None:
        training_min = self.training_dock.minimumSizeHint().width()
        activations_min = self.activations_dock.minimumSizeHint().width()
        spare = max(0, self.width() - training_min - activations_min)
        training = training_min + int(spare * 0.85)  # the curves need it more
        self.resizeDocks(
            [self.training_dock, self.activations_dock],
            [training, self.width() - training],
            Qt.Orientation.Horizontal,
        )

    def _action(
        self,
        text: str,
        slot=None,
        shortcut: QKeySequence | QKeySequence.StandardKey | str | None = None,
        enabled: bool = True,
        tip: str = "",
    ) -> QAction:
        action = QAction(text, self)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
        if slot is not None:
            action.triggered.connect(slot)
        action.setEnabled(enabled)
        if tip:
            action.setStatusTip(tip)
            action.setToolTip(tip)
        return action

    def _build_actions(self) -> None:
        sk = QKeySequence.StandardKey
        self.act_open = self._action(
            "&Open…", self._on_open_triggered, sk.Open, tip="Open an architecture or Python file"
        )
        self.act_save = self._action(
            "&Save", shortcut=sk.Save, enabled=False, tip="Saving arrives with the editor"
        )
        self.act_save_as = self._action(
            "Save &As…", shortcut=sk.SaveAs, enabled=False, tip="Saving arrives with the editor"
        )
        self.act_quit = self._action(
            "&Quit", self.close, "Ctrl+Q"
        )  # sk.Quit is empty on some platforms
        self.act_undo = self._action(
            "&Undo", shortcut=sk.Undo, enabled=False, tip="Nothing to undo"
        )
        self.act_redo = self._action(
            "&Redo", shortcut="Ctrl+Shift+Z", enabled=False, tip="Nothing to redo"
        )
        self.act_train_start = self._action(
            "&Start training", shortcut="F5", enabled=False, tip="Waiting for PyTorch to load"
        )
        self.act_train_pause = self._action("&Pause", shortcut="F6", enabled=False)
        self.act_train_stop = self._action("S&top", shortcut="Shift+F5", enabled=False)
        self.act_about = self._action("&About cnnviz", self._on_about_triggered)
        self.act_about_qt = self._action("About &Qt", QApplication.aboutQt)
        self.act_full_screen = self._action("&Full screen", self._on_full_screen_toggled, "F11")
        self.act_full_screen.setCheckable(True)

    def _build_menus(self) -> None:
        bar = self.menuBar()
        file_menu = self.file_menu = bar.addMenu("&File")
        file_menu.addAction(self.act_open)
        self.recent_menu = QMenu("Open &Recent", self)
        file_menu.addMenu(self.recent_menu)
        file_menu.addSeparator()
        file_menu.addAction(self.act_save)
        file_menu.addAction(self.act_save_as)
        file_menu.addSeparator()
        file_menu.addAction(self.act_quit)
        self._rebuild_recent_menu()

        edit_menu = self.edit_menu = bar.addMenu("&Edit")
        edit_menu.addAction(self.act_undo)
        edit_menu.addAction(self.act_redo)

        self.view_menu = bar.addMenu("&View")
        for dock in (
            self.models_dock,
            self.inspector_dock,
            self.training_dock,
            self.activations_dock,
            self.palette_dock,
        ):
            self.view_menu.addAction(dock.toggleViewAction())
        self.view_menu.addSeparator()
        self.view_menu.addAction(self.act_full_screen)

        train_menu = bar.addMenu("&Train")
        train_menu.addAction(self.act_train_start)
        train_menu.addAction(self.act_train_pause)
        train_menu.addAction(self.act_train_stop)

        help_menu = bar.addMenu("&Help")
        help_menu.addAction(self.act_about)
        help_menu.addAction(self.act_about_qt)

    def _build_status_bar(self) -> None:
        bar = self.statusBar()
        self.status_busy = QProgressBar()
        self.status_busy.setRange(0, 0)  # indeterminate while torch imports
        self.status_busy.setMaximumWidth(120)
        self.status_busy.setMaximumHeight(14)
        self.status_device = QLabel("")
        bar.addPermanentWidget(self.status_busy)
        bar.addPermanentWidget(self.status_device)
        bar.showMessage("Loading PyTorch…")

    # ----------------------------------------------------------------- settings
    def _restore_settings(self) -> None:
        store = app_settings.settings()
        geometry = store.value("window/geometry")
        state = store.value("window/state")
        if isinstance(geometry, QByteArray):
            self.restoreGeometry(geometry)
        if isinstance(state, QByteArray):
            # A state saved by another version of the arrangement is ignored.
            self._restored_dock_state = self.restoreState(state, DOCK_LAYOUT_VERSION)

    def _save_settings(self) -> None:
        store = app_settings.settings()
        store.setValue("window/geometry", self.saveGeometry())
        store.setValue("window/state", self.saveState(DOCK_LAYOUT_VERSION))
        store.sync()

    def _rebuild_recent_menu(self) -> None:
        self.recent_menu.clear()
        files = app_settings.recent_files()
        for path in files:
            action = self.recent_menu.addAction(Path(path).name)
            action.setToolTip(path)
            action.setStatusTip(path)
            action.triggered.connect(lambda _checked=False, p=path: self.open_path(p))
        if files:
            self.recent_menu.addSeparator()
            self.recent_menu.addAction("Clear list", self._on_clear_recent_triggered)
        self.recent_menu.setEnabled(bool(files))

    # ----------------------------------------------------------------- background import
    @Slot()
    def _on_window_first_paint(self) -> None:
        if self._import_worker is None and not self.core_ready and not self._closing:
            self._import_worker = ImportWorker(self)
            self._import_worker.sig_loaded.connect(self._on_import_loaded)
            self._import_worker.sig_failed.connect(self._on_import_failed)
            self._import_worker.start()

    @Slot(float)
    def _on_import_loaded(self, seconds: float) -> None:
        from cnnviz.core.device import describe_device
        from cnnviz.core.training import configure_main_thread

        # Before any torch work here: the GUI thread must not own an OpenMP team, or a
        # training thread runs a third slower (benchmarks/training.py measures it).
        self.status_device.setText(describe_device())
        configure_main_thread()
        self.core_ready = True
        self.status_busy.hide()
        self.statusBar().showMessage(f"PyTorch loaded in {seconds:.1f} s", 5000)
        self._build_model_views()
        self.load_model(self.requested_model, "teaching", self.requested_input)
        self.sig_core_ready.emit()

    def _build_model_views(self) -> None:
        """The panels that need the core (and so torch): built once it has loaded."""
        from cnnviz.ui.inspector import InspectorPanel
        from cnnviz.ui.layer_table import LayerTablePanel
        from cnnviz.ui.model_picker import ModelPickerPanel

        self.picker = ModelPickerPanel()
        self.picker.populate()
        self.picker.sig_model_requested.connect(self._on_picker_model_requested)
        self.models_dock.setWidget(self.picker)
        self.inspector = InspectorPanel()
        from PySide6.QtWidgets import QSplitter

        from cnnviz.ui.param_editor import ParamEditor

        self.param_editor = ParamEditor()
        inspector_box = QSplitter(Qt.Orientation.Vertical)
        inspector_box.setChildrenCollapsible(False)
        inspector_box.addWidget(self.param_editor)
        inspector_box.addWidget(self.inspector)
        inspector_box.setStretchFactor(1, 1)
        self.inspector_dock.setWidget(inspector_box)
        self.layer_table = LayerTablePanel()
        self.layer_table.sig_selected.connect(self._on_layer_table_selected)
        self.sig_selection_changed.connect(self._on_selection_changed)
        self.central.addWidget(self.layer_table)
        self._build_graph_view()
        # The panels' minimum widths may stretch the window while the docks are side by side;
        # the arrangement then gives it back its size where they become tabs.
        size = self.size()
        self._build_training_panel()
        self._build_probe_panel()
        self._arrange_bottom_docks(size.width(), size.height())
        from cnnviz.ui.editor import install_editor

        install_editor(self)  # self.editor, self.files: edits, palette, Save, autosave

    def _build_training_panel(self) -> None:
        from cnnviz.ui.training_panel import TrainingPanel

        self.training_panel = TrainingPanel()
        self.training_dock.setWidget(self.training_panel)
        self.sig_model_loaded.connect(self.training_panel.set_model)
        self.training_panel.sig_state_changed.connect(self._on_training_state_changed)
        self.act_train_start.triggered.connect(self._on_train_start_triggered)
        self.act_train_pause.triggered.connect(self._on_train_pause_triggered)
        self.act_train_stop.triggered.connect(self._on_train_stop_triggered)
        self._on_training_state_changed()

    def _build_probe_panel(self) -> None:
        from cnnviz.ui.probe_panel import ProbePanel

        self.probe_panel = ProbePanel()
        self.activations_dock.setWidget(self.probe_panel)
        self.probe_panel.attach_training_panel(self.training_panel)
        self.sig_model_loaded.connect(self.probe_panel.set_model)
        self.sig_selection_changed.connect(self.probe_panel.show_layer)

    def load_model(
        self, source: str, size: str = "teaching", input_shape: tuple[int, ...] | None = None
    ) -> bool:
        """Import ``source`` and show it; a user error is shown and the current model kept.

        Returns:
            True when the model was loaded.
        """
        from cnnviz.core.analysis import analyse, format_count
        from cnnviz.core.sources import load_source
        from cnnviz.errors import CnnvizError

        if not self._training_may_end(source):
            return False
        files = getattr(self, "files", None)
        if files is not None and not files.confirm_discard(f"open {source}"):
            return False
        self.statusBar().showMessage(f"Opening {source}…")
        QApplication.setOverrideCursor(Qt.CursorShape.WaitCursor)
        try:
            graph = load_source(source, input_shape=input_shape, size=size)
            analysis = analyse(graph)
        except CnnvizError as exc:
            self.picker.error.setText(str(exc))
            self.statusBar().showMessage(f"Could not open {source}: {exc}", 10000)
            self.sig_load_failed.emit(source, str(exc))
            return False
        finally:
            QApplication.restoreOverrideCursor()
        self.graph, self.analysis = graph, analysis
        self.layer_table.set_model(graph, analysis)
        self.inspector.set_model(graph, analysis)
        self.central.setCurrentWidget(self.model_tabs)
        self.picker.select_source(source)
        self.setWindowTitle(f"cnnviz — {graph.name}")
        self.statusBar().showMessage(
            f"{graph.name}: {analysis.total_params:,} parameters, "
            f"{format_count(analysis.macs, 'MACs')}, input {analysis.input_shape}"
            + (f", {len(analysis.errors)} problem(s)" if analysis.errors else "")
        )
        self._selection = ("", False)
        self.current_source = source
        self.sig_model_loaded.emit(graph, analysis)
        return True

    def select_item(self, name: str, is_group: bool = False) -> None:
        """Make ``name`` the selection everywhere, announced by ``sig_selection_changed``."""
        if (name, is_group) == self._selection:
            return
        self._selection = (name, is_group)
        self.sig_selection_changed.emit(name, is_group)

    @Slot(str, str, object)
    def _on_picker_model_requested(self, source: str, size: str, input_shape) -> None:
        self.load_model(source, size, input_shape)

    @Slot(str, bool)
    def _on_layer_table_selected(self, name: str, is_group: bool) -> None:
        self.select_item(name, is_group)

    @Slot(str, bool)
    def _on_selection_changed(self, name: str, is_group: bool) -> None:
        if name:
            self.inspector.show_item(name, is_group)
        else:
            self.inspector.show_model()

    @Slot(str)
    def _on_import_failed(self, message: str) -> None:
        self.status_busy.hide()
        self.statusBar().showMessage(f"PyTorch could not be loaded: {message}")
        self.loading_page.setText(
            "<h2>PyTorch could not be loaded</h2>"
            f"<p>{message}</p><p>Reinstall with <tt>./dev env</tt>, then restart cnnviz.</p>"
        )

    # ----------------------------------------------------------------- files
    def open_path(self, path: str) -> bool:
        """Open an architecture (.json) or Python (``file.py:NAME``) file; kept in Open Recent."""
        if not self.core_ready:
            self.statusBar().showMessage("Still loading PyTorch; try again in a moment", 5000)
            return False
        if path.endswith(".py"):
            name, ok = QInputDialog.getText(
                self, "Model in a Python file", "Class or factory that builds the model:"
            )
            if not ok or not name.strip():
                return False
            path = f"{path}:{name.strip()}"
        loaded = self.load_model(path, "original", None)
        if loaded:
            app_settings.add_recent_file(path)
            self._rebuild_recent_menu()
        return loaded

    @Slot()
    def _on_open_triggered(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open", "", OPEN_FILTER)
        if path:
            self.open_path(path)

    @Slot()
    def _on_clear_recent_triggered(self) -> None:
        app_settings.clear_recent_files()
        self._rebuild_recent_menu()

    # ----------------------------------------------------------------- other slots
    @Slot()
    def _on_about_triggered(self) -> None:
        from cnnviz.ui.about import AboutDialog

        AboutDialog(self).exec()

    @Slot(bool)
    def _on_full_screen_toggled(self, on: bool) -> None:
        self.showFullScreen() if on else self.showNormal()

    # ----------------------------------------------------------------- graph view
    def _build_graph_view(self) -> None:
        """The graph in the centre, the layer table in a tab beside it; View and File actions."""
        import gc

        from PySide6.QtWidgets import QTabWidget

        from cnnviz.ui.graph_view import GraphView

        # torch's objects live as long as the app: freezing them keeps each later full garbage
        # collection from walking them (0.3 s, in the middle of opening a model otherwise)
        gc.freeze()
        self.graph_view = GraphView()
        self.model_tabs = QTabWidget()
        self.model_tabs.setDocumentMode(True)
        self.central.removeWidget(self.layer_table)
        self.model_tabs.addTab(self.graph_view, "Graph")
        self.model_tabs.addTab(self.layer_table, "Table")
        self.central.addWidget(self.model_tabs)
        self.graph_view.sig_selected.connect(self._on_graph_view_selected)
        self.sig_model_loaded.connect(self._on_model_loaded_graph_view)
        self.sig_selection_changed.connect(self._on_selection_changed_graph_view)
        first = self.view_menu.actions()[0] if self.view_menu.actions() else None
        for action in self.graph_view.view_actions():
            if action is None:
                self.view_menu.insertSeparator(first)
            else:
                self.view_menu.insertAction(first, action)
        self.view_menu.insertSeparator(first)
        self.act_export_image = self._action(
            "&Export image…",
            self._on_export_image_triggered,
            "Ctrl+E",
            tip="Save the whole graph as PNG or SVG",
        )
        self.act_export_visible = self._action(
            "Export &visible part…",
            lambda: self._on_export_image_triggered(visible_only=True),
            tip="Save the part of the graph on screen as PNG or SVG",
        )
        self.file_menu.insertAction(self.act_quit, self.act_export_image)
        self.file_menu.insertAction(self.act_quit, self.act_export_visible)
        self.file_menu.insertSeparator(self.act_quit)

    @Slot(object, object)
    def _on_model_loaded_graph_view(self, graph, analysis) -> None:
        if graph is self.graph_view.graph:  # the same graph, edited: keep what is open
            self.graph_view.refresh(graph, analysis)
        else:
            self.graph_view.set_model(graph, analysis)

    @Slot(str, bool)
    def _on_graph_view_selected(self, name: str, is_group: bool) -> None:
        self.select_item(name, is_group)

    @Slot(str, bool)
    def _on_selection_changed_graph_view(self, name: str, is_group: bool) -> None:
        if name != self.graph_view.selected() or not name:
            self.graph_view.select(name, is_group)
        if name and self.layer_table.currentItem() is not self.layer_table.items.get(name):
            self.layer_table.select(name)

    def _on_export_image_triggered(self, visible_only: bool = False) -> None:
        from cnnviz.errors import CnnvizError

        name = self.graph.name if self.graph is not None else "graph"
        path, _ = QFileDialog.getSaveFileName(
            self,
            "Export visible part" if visible_only else "Export image",
            f"{name}.png",
            "PNG image (*.png);;SVG drawing (*.svg)",
        )
        if not path:
            return
        if not path.lower().endswith((".png", ".svg")):
            path += ".png"
        try:
            size = self.graph_view.export_image(path, visible_only=visible_only)
        except CnnvizError as exc:
            QMessageBox.warning(self, "Export image", str(exc))
            return
        self.statusBar().showMessage(f"Saved {path} ({size.width()}×{size.height()})", 8000)

    # ----------------------------------------------------------------- training
    def _training_may_end(self, source: str) -> bool:
        """Before another model replaces the one training: ask, and stop it (within a batch)."""
        panel = getattr(self, "training_panel", None)
        if panel is None or not panel.is_training():
            return True
        answer = QMessageBox.question(
            self,
            "Training is running",
            f"Stop training {self.graph.name if self.graph else 'the model'} and open "
            f"{source}? The trained weights are not kept unless you saved a checkpoint.",
        )
        if answer != QMessageBox.StandardButton.Yes:
            return False
        panel.shutdown()
        return True

    @Slot()
    def _on_training_state_changed(self) -> None:
        panel = self.training_panel
        reason = panel.start_block_reason()
        self.act_train_start.setEnabled(not reason)
        tip = reason or "Train the model with the settings of the training panel"
        self.act_train_start.setToolTip(tip)
        self.act_train_start.setStatusTip(tip)
        self.act_train_pause.setEnabled(panel.is_training())
        self.act_train_pause.setText("&Resume" if panel.is_paused() else "&Pause")
        self.act_train_stop.setEnabled(panel.is_training())

    @Slot()
    def _on_train_start_triggered(self) -> None:
        self.training_dock.show()
        self.training_dock.raise_()
        self.training_panel.start()

    @Slot()
    def _on_train_pause_triggered(self) -> None:
        self.training_panel.toggle_pause()

    @Slot()
    def _on_train_stop_triggered(self) -> None:
        self.training_panel.stop()

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt's name
        files = getattr(self, "files", None)
        if files is not None and not files.confirm_discard("close the window"):
            event.ignore()
            return
        if files is not None:
            files.shutdown()  # a clean exit: no recovery file is left
        self._closing = True
        self._save_settings()
        panel = getattr(self, "training_panel", None)
        if panel is not None:
            # Stops within one batch and joins the threads: nothing is left running.
            panel.shutdown()
        if self._import_worker is not None:
            # An import cannot be interrupted; it is short, so wait for it rather than
            # leave a thread running past the window.
            self._import_worker.wait()
        super().closeEvent(event)
