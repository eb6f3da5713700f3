"""Every QThread of cnnviz lives here (DESIGN.md, rule 5)."""

from __future__ import annotations

import importlib
import time

from PySide6.QtCore import QThread, Signal


class ImportWorker(QThread):
    """Imports the heavy modules (torch, torchvision, the core) off the GUI thread.

    The window is painted first; this thread then pays the ~3 s import so the user
    sees the shell at once and the status bar says what is still loading.
    """

    sig_loaded = Signal(float)
    sig_failed = Signal(str)

    MODULES = (
        "torch",
        "torchvision",
        "cnnviz.core.device",
        "cnnviz.core.sources",
        "cnnviz.core.trace",
        "cnnviz.core.analysis",
        "cnnviz.core.zoo",
        "cnnviz.core.training",
    )

    def run(self) -> None:  # noqa: D102 - QThread entry point
        start = time.perf_counter()
        try:
            for name in self.MODULES:
                importlib.import_module(name)
        except Exception as exc:  # noqa: BLE001 - reported to the window, not raised in a thread
            self.sig_failed.emit(f"{type(exc).__name__}: {exc}")
            return
        self.sig_loaded.emit(time.perf_counter() - start)
