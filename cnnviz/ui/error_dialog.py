"""Unhandled exceptions: logged to a file, shown in a dialog, and the app keeps running."""

from __future__ import annotations

import logging
import sys
import threading
import traceback
from types import TracebackType

from PySide6.QtCore import QObject, Qt, Signal, Slot
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from cnnviz import paths
from cnnviz.errors import CnnvizError

log = logging.getLogger("cnnviz")


class ErrorDialog(QDialog):
    """Says what went wrong in one sentence, with the details a click away and copyable."""

    def __init__(self, summary: str, details: str, log_path: str, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("cnnviz: something went wrong")
        self.setMinimumWidth(560)
        self.details = details
        layout = QVBoxLayout(self)
        message = QLabel(
            f"<b>{_escape(summary)}</b><br><br>Your work is kept and cnnviz goes on running."
            f"<br>The details were written to <tt>{_escape(log_path)}</tt>."
        )
        message.setWordWrap(True)
        message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(message)
        self.details_view = QPlainTextEdit(details)
        self.details_view.setReadOnly(True)
        self.details_view.setVisible(False)
        self.details_view.setMinimumHeight(220)
        layout.addWidget(self.details_view)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        self.copy_button = QPushButton("Copy details")
        self.show_button = QPushButton("Show details")
        self.show_button.setCheckable(True)
        buttons.addButton(self.copy_button, QDialogButtonBox.ButtonRole.ActionRole)
        buttons.addButton(self.show_button, QDialogButtonBox.ButtonRole.ActionRole)
        self.copy_button.clicked.connect(self._on_copy_clicked)
        self.show_button.toggled.connect(self.details_view.setVisible)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)

    @Slot()
    def _on_copy_clicked(self) -> None:
        QGuiApplication.clipboard().setText(self.details)
        self.copy_button.setText("Copied")


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def describe(exc: BaseException) -> str:
    """One line for the user: a CnnvizError's own message, else the type and the message."""
    if isinstance(exc, CnnvizError):
        return str(exc)
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class ExceptionReporter(QObject):
    """Installs ``sys.excepthook`` and ``threading.excepthook``; reports on the GUI thread.

    Exceptions raised in other threads are forwarded through a queued signal, so the
    dialog is always created on the GUI thread. While one dialog is open, further errors
    are logged and appended to it instead of stacking new dialogs (an error in a paint
    handler would otherwise open one dialog per repaint).
    """

    sig_report = Signal(str, str)

    def __init__(self, parent: QObject | None = None, show_dialogs: bool = True):
        super().__init__(parent)
        self.show_dialogs = show_dialogs
        self.reported: list[str] = []
        self._dialog: ErrorDialog | None = None
        self._previous_hook = sys.excepthook
        self._previous_thread_hook = threading.excepthook
        self.sig_report.connect(self._on_report, Qt.ConnectionType.QueuedConnection)
        _configure_logging()

    def install(self) -> None:
        """Route unhandled exceptions of every thread to this reporter."""
        sys.excepthook = self.handle
        threading.excepthook = self._handle_thread

    def uninstall(self) -> None:
        """Restore the hooks that were there before ``install``."""
        sys.excepthook = self._previous_hook
        threading.excepthook = self._previous_thread_hook

    def handle(
        self,
        exc_type: type[BaseException],
        exc: BaseException,
        tb: TracebackType | None,
    ) -> None:
        """The ``sys.excepthook``: log the traceback, then report it on the GUI thread."""
        if issubclass(exc_type, KeyboardInterrupt):
            self._previous_hook(exc_type, exc, tb)
            return
        details = "".join(traceback.format_exception(exc_type, exc, tb))
        log.error("unhandled exception\n%s", details)
        self.sig_report.emit(describe(exc), details)

    def _handle_thread(self, args: threading.ExceptHookArgs) -> None:
        if args.exc_value is not None:
            self.handle(args.exc_type, args.exc_value, args.exc_traceback)

    @Slot(str, str)
    def _on_report(self, summary: str, details: str) -> None:
        self.reported.append(summary)
        if not self.show_dialogs:
            return
        if self._dialog is not None and self._dialog.isVisible():
            self._dialog.details += "\n" + details
            self._dialog.details_view.setPlainText(self._dialog.details)
            return
        self._dialog = ErrorDialog(summary, details, str(paths.log_file()))
        self._dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self._dialog.destroyed.connect(self._on_dialog_destroyed)
        self._dialog.show()

    @Slot()
    def _on_dialog_destroyed(self) -> None:
        self._dialog = None


def _configure_logging() -> None:
    if any(getattr(h, "_cnnviz", False) for h in log.handlers):
        return
    handler = logging.FileHandler(paths.log_file(), encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler._cnnviz = True  # type: ignore[attr-defined]
    log.addHandler(handler)
    log.setLevel(logging.INFO)
