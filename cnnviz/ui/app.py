"""Starting the desktop app: the QApplication, error reporting, the window."""

from __future__ import annotations

import os
import sys
import time

from PySide6.QtCore import QTimer
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication

from cnnviz import __version__, resources
from cnnviz.ui.error_dialog import ExceptionReporter
from cnnviz.ui.main_window import MainWindow

STARTUP_PROBE_ENV = "CNNVIZ_STARTUP_PROBE"


def make_application(argv: list[str] | None = None) -> QApplication:
    """The QApplication with cnnviz's names, style sheet and icon (reuses a running one)."""
    app = QApplication.instance() or QApplication(argv if argv is not None else sys.argv[:1])
    app.setApplicationName("cnnviz")
    app.setOrganizationName("cnnviz")
    app.setApplicationVersion(__version__)
    app.setWindowIcon(QIcon(str(resources.path("icons/cnnviz.svg"))))
    app.setStyleSheet(resources.read_text("style.qss"))
    return app


def run_app(model: str = "lenet5", input_shape: tuple[int, ...] | None = None) -> int:
    """Open the window and run the event loop until it closes; returns the exit code."""
    app = make_application()
    reporter = ExceptionReporter(app)
    reporter.install()
    window = MainWindow(model=model, input_shape=input_shape)
    if os.environ.get(STARTUP_PROBE_ENV):
        # benchmarks/startup.py: report when the first pixel of the window is painted.
        def _report() -> None:
            print(f"CNNVIZ_FIRST_PAINT {window.first_paint_time or time.time():.6f}", flush=True)
            window.close()

        window.sig_first_paint.connect(lambda: QTimer.singleShot(0, _report))
    window.show()
    try:
        return app.exec()
    finally:
        reporter.uninstall()
