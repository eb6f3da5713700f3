"""Saving, exporting and recovering edited architectures.

* File ▸ Save / Save As write the architecture ``.json`` (with its schema version) of the
  edited graph; Export ▸ PyTorch source writes :func:`cnnviz.core.codegen.to_source`.
* While the graph has unsaved changes, it is written every :data:`AUTOSAVE_MS` to a recovery
  file in the data directory. A clean exit (or saving, or discarding) removes it, so a recovery
  file found at start-up means cnnviz ended without asking: it offers to open it.
* Closing the window or opening another model with unsaved changes asks Save / Discard /
  Cancel; the window title shows ``*`` while there are unsaved changes.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, QTimer, Signal, Slot
from PySide6.QtWidgets import QFileDialog, QMenu, QMessageBox

from cnnviz import paths
from cnnviz.errors import CnnvizError
from cnnviz.ui import settings as app_settings

if TYPE_CHECKING:
    from cnnviz.ui.editor import EditController
    from cnnviz.ui.main_window import MainWindow

AUTOSAVE_MS = 30_000
RECOVERY_FORMAT = 1
ARCH_FILTER = "Architecture files (*.json)"
PY_FILTER = "Python source (*.py)"


def recovery_path() -> Path:
    """Where the unsaved graph is kept between autosaves (in the data directory)."""
    return paths.data_dir() / "recovery" / "unsaved-architecture.json"


def write_recovery(graph: Any, source: str | None, file_path: str | None) -> Path:
    """Write ``graph`` to the recovery file (atomically) with where it came from.

    Raises:
        CnnvizError: The file cannot be written.
    """
    path = recovery_path()
    data = {
        "cnnviz_recovery": RECOVERY_FORMAT,
        "saved_at": time.strftime("%Y-%m-%d %H:%M:%S"),
        "pid": os.getpid(),
        "source": source,
        "file": file_path,
        "graph": graph.to_dict(),
    }
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(data), encoding="utf-8")
        tmp.replace(path)
    except OSError as e:
        raise CnnvizError(f"cannot write the recovery file {path}: {e}") from None
    return path


def read_recovery(path: Path | None = None) -> tuple[Any, dict[str, Any]]:
    """The graph of a recovery file and its details (``saved_at``, ``source``, ``file``).

    Raises:
        CnnvizError: The file is missing, broken or from a newer cnnviz.
    """
    from cnnviz.core.graph import ArchGraph

    path = path or recovery_path()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CnnvizError(f"the recovery file {path} cannot be read: {e}") from None
    if not isinstance(data, dict) or "graph" not in data:
        raise CnnvizError(f"the recovery file {path} is not one cnnviz wrote")
    if not isinstance(data.get("cnnviz_recovery"), int) or data["cnnviz_recovery"] > 1:
        raise CnnvizError(f"the recovery file {path} is from a newer cnnviz")
    graph = ArchGraph.from_dict(data["graph"], f"the recovery file {path}")
    return graph, data


class FileController(QObject):
    """File actions of the editor: Save, Save As, Export, autosave and recovery, prompts.

    Args:
        window: The main window.
        editor: Its :class:`~cnnviz.ui.editor.EditController`.

    Attributes:
        file_path: The architecture file the graph was opened from or saved to (None: none).
        recovered: True while the shown graph came from a recovery file and is not saved yet.
        message_box: The last non-modal message shown (for a failed open or save).
    """

    sig_saved = Signal(str)

    def __init__(self, window: MainWindow, editor: EditController) -> None:
        super().__init__(window)
        self.window = window
        self.editor = editor
        self.file_path: str | None = None
        self.recovered = False
        self.message_box: QMessageBox | None = None
        self._autosaved_version = -1
        self._next_recovered: dict[str, Any] | None = None
        self._shut_down = False
        self._wrote_recovery = False  # a file found at start belongs to a crash: keep it
        self.timer = QTimer(self)
        self.timer.setInterval(AUTOSAVE_MS)
        self.timer.timeout.connect(self.autosave)
        self.timer.start()
        self._build_actions()
        editor.sig_session_started.connect(self._on_editor_session_started)
        editor.sig_changed.connect(self._on_editor_changed)
        if hasattr(window, "sig_load_failed"):
            window.sig_load_failed.connect(self._on_window_load_failed)
        window.sig_core_ready.connect(self._on_window_core_ready)

    def _build_actions(self) -> None:
        w = self.window
        w.act_save.triggered.connect(self.save)
        w.act_save_as.triggered.connect(lambda _c=False: self.save_as())
        for act, tip in (
            (w.act_save, "Save the architecture (.json)"),
            (w.act_save_as, "Save the architecture under another name"),
        ):
            act.setEnabled(True)
            act.setToolTip(tip)
            act.setStatusTip(tip)
        self.export_menu = QMenu("E&xport", w)
        self.act_export_python = self.export_menu.addAction("&PyTorch source…")
        self.act_export_python.setStatusTip("Write the model as readable PyTorch code (.py)")
        self.act_export_python.triggered.connect(lambda _c=False: self.export_python())
        file_menu = getattr(w, "file_menu", None)
        if file_menu is not None:
            file_menu.insertMenu(w.act_quit, self.export_menu)
            file_menu.insertSeparator(w.act_quit)

    # ----------------------------------------------------------------- state
    @property
    def session(self):
        """The editor's session (None before a model is open)."""
        return self.editor.session

    def title(self) -> str:
        """The window title: the file (or model) name, ``*`` when there are unsaved changes."""
        s = self.session
        if s is None:
            return "cnnviz"
        name = Path(self.file_path).name if self.file_path else s.graph.name
        return f"cnnviz — {name}{'*' if self.editor.dirty else ''}"

    @Slot(object)
    def _on_editor_session_started(self, _session) -> None:
        # a newly opened model: where it came from decides where Save writes
        source = getattr(self.window, "current_source", None) or ""
        recovered, self._next_recovered = self._next_recovered, None
        if recovered is not None:
            self.file_path = recovered.get("file")
            self.recovered = True
        else:
            self.file_path = source if source.lower().endswith(".json") else None
            self.recovered = False
        self._autosaved_version = -1

    @Slot()
    def _on_editor_changed(self) -> None:
        s = self.session
        self.window.setWindowTitle(self.title())
        self.window.act_save.setEnabled(s is not None)
        self.window.act_save_as.setEnabled(s is not None)
        self.act_export_python.setEnabled(s is not None)
        if s is not None and not self.editor.dirty and self._wrote_recovery:
            self.remove_recovery()  # undone back to the saved state: nothing to recover

    # ----------------------------------------------------------------- messages
    def show_message(self, title: str, text: str) -> QMessageBox:
        """A warning that does not block the window (kept in :attr:`message_box`)."""
        if self.message_box is not None:
            self.message_box.close()
        box = QMessageBox(QMessageBox.Icon.Warning, title, text, QMessageBox.StandardButton.Ok)
        box.setParent(self.window, box.windowFlags())
        box.setModal(False)
        box.show()
        self.message_box = box
        self.window.statusBar().showMessage(f"{title}: {text}", 15_000)
        return box

    @Slot(str, str)
    def _on_window_load_failed(self, source: str, message: str) -> None:
        if source.lower().endswith(".json"):
            self.show_message("Could not open the architecture file", message)

    # ----------------------------------------------------------------- save / export
    @Slot()
    def save(self) -> bool:
        """Save to the current file, or ask for one."""
        if self.file_path:
            return self.save_as(self.file_path)
        return self.save_as()

    def save_as(self, path: str | None = None) -> bool:
        """Save the architecture to ``path`` (asked for when None); True when saved."""
        s = self.session
        if s is None:
            return False
        if path is None:
            start = self.file_path or f"{s.graph.name}.json"
            path, _ = QFileDialog.getSaveFileName(
                self.window, "Save architecture", start, ARCH_FILTER
            )
            if not path:
                return False
        if not path.lower().endswith(".json"):
            path += ".json"
        try:
            s.save(path)
        except CnnvizError as e:
            self.show_message("Could not save", str(e))
            return False
        self.file_path = path
        self.recovered = False
        app_settings.add_recent_file(path)
        rebuild = getattr(self.window, "_rebuild_recent_menu", None)
        if callable(rebuild):
            rebuild()
        self.remove_recovery()
        self.window.setWindowTitle(self.title())
        self.window.statusBar().showMessage(f"Saved {path}", 8000)
        self.sig_saved.emit(path)
        return True

    def export_python(self, path: str | None = None) -> bool:
        """Write the graph as PyTorch source to ``path`` (asked for when None)."""
        from cnnviz.core.codegen import to_source

        s = self.session
        if s is None:
            return False
        if path is None:
            base = Path(self.file_path).stem if self.file_path else s.graph.name
            path, _ = QFileDialog.getSaveFileName(
                self.window, "Export PyTorch source", f"{base}.py", PY_FILTER
            )
            if not path:
                return False
        if not path.lower().endswith(".py"):
            path += ".py"
        try:
            text = to_source(s.graph)
            Path(path).write_text(text, encoding="utf-8")
        except CnnvizError as e:
            self.show_message("Could not export", str(e))
            return False
        except OSError as e:
            self.show_message("Could not export", f"cannot write {path}: {e}")
            return False
        self.window.statusBar().showMessage(f"Exported {path}", 8000)
        return True

    # ----------------------------------------------------------------- recovery
    @Slot()
    def autosave(self) -> bool:
        """Write the recovery file if there are changes since the last autosave."""
        s = self.session
        if s is None or not self.editor.dirty or s.version == self._autosaved_version:
            return False
        try:
            write_recovery(s.graph, getattr(self.window, "current_source", None), self.file_path)
        except CnnvizError as e:
            self.window.statusBar().showMessage(str(e), 10_000)
            return False
        self._autosaved_version = s.version
        self._wrote_recovery = True
        return True

    def remove_recovery(self) -> None:
        """Delete the recovery file (nothing is lost: saved, discarded or clean)."""
        with contextlib.suppress(OSError):
            recovery_path().unlink(missing_ok=True)
        self._wrote_recovery = False

    @Slot()
    def _on_window_core_ready(self) -> None:
        QTimer.singleShot(0, self.offer_recovery)

    def offer_recovery(self) -> bool:
        """If a recovery file is there (cnnviz did not exit cleanly), offer to open it.

        Returns:
            True when the recovered graph is now shown.
        """
        path = recovery_path()
        if not path.is_file():
            return False
        try:
            graph, info = read_recovery(path)
        except CnnvizError as e:
            self.show_message("Recovery", f"{e}; it was left at {path}")
            return False
        origin = info.get("file") or info.get("source") or graph.name
        answer = QMessageBox.question(
            self.window,
            "Recover unsaved changes?",
            f"cnnviz did not close properly last time. Open the unsaved changes to "
            f"{origin} from {info.get('saved_at', 'the last autosave')}?",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Discard,
            QMessageBox.StandardButton.Yes,
        )
        if answer != QMessageBox.StandardButton.Yes:
            self.remove_recovery()
            return False
        return self.open_recovered(path, info)

    def open_recovered(self, path: Path, info: dict[str, Any]) -> bool:
        """Show the graph of recovery file ``path`` as unsaved work."""
        # load_model reads the file; keep a copy beside it, since a clean state deletes it
        keep = path.with_name("recovering.json")
        try:
            graph, _ = read_recovery(path)
            graph.save(keep)
        except (CnnvizError, OSError) as e:
            self.show_message("Recovery", str(e))
            return False
        self._next_recovered = info
        try:
            loaded = self.window.load_model(str(keep), "original", None)
        finally:
            keep.unlink(missing_ok=True)
        if not loaded:
            self._next_recovered = None
            return False
        self.recovered = True
        self.window.setWindowTitle(self.title())
        self.autosave()
        self.window.statusBar().showMessage(
            "Recovered the unsaved changes; save them with Ctrl+S", 10_000
        )
        return True

    # ----------------------------------------------------------------- prompts
    def confirm_discard(self, doing: str = "close the window") -> bool:
        """Before the shown graph goes away: Save / Discard / Cancel when it has changes.

        Returns:
            True when it may go (saved, discarded or clean).
        """
        s = self.session
        if s is None or not self.editor.dirty or self._shut_down:
            return True
        name = Path(self.file_path).name if self.file_path else s.graph.name
        box = QMessageBox.StandardButton
        answer = QMessageBox.warning(
            self.window,
            "Unsaved changes",
            f"{name} has changes that are not saved ({len(s.history)} edit"
            f"{'s' * (len(s.history) != 1)}). Save them before you {doing}?",
            box.Save | box.Discard | box.Cancel,
            box.Save,
        )
        if answer == box.Save:
            return self.save()
        if answer == box.Discard:
            self.remove_recovery()
            self.recovered = False
            return True
        return False

    def shutdown(self) -> None:
        """A clean exit: stop autosaving and remove the recovery file."""
        self.timer.stop()
        self.remove_recovery()
        self._shut_down = True  # the window is closing: a second close asks nothing
