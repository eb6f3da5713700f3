"""Qt fixtures: every QThread that a test starts must be finished when the test ends."""

from __future__ import annotations

import gc
import weakref

import pytest
from PySide6.QtCore import QThread

_started: weakref.WeakSet[QThread] = weakref.WeakSet()
_original_start = QThread.start


def _tracking_start(self: QThread, *args, **kwargs):
    _started.add(self)
    return _original_start(self, *args, **kwargs)


QThread.start = _tracking_start


def running_qthreads() -> list[QThread]:
    """QThreads started through Python that are still running."""
    alive = []
    for thread in list(_started):
        try:
            if thread.isRunning():
                alive.append(thread)
        except RuntimeError:  # the C++ object is gone, so is its thread
            pass
    return alive


@pytest.fixture(autouse=True)
def no_thread_left_running(qtbot):
    """Fails the test that leaves a QThread running (after letting queued events settle)."""
    yield
    qtbot.wait(1)
    alive = running_qthreads()
    if alive:
        for thread in alive:
            thread.quit()
            thread.wait(5000)
        names = ", ".join(type(t).__name__ for t in alive)
        pytest.fail(f"test left {len(alive)} QThread(s) running: {names}")


@pytest.fixture(autouse=True)
def widgets_live_until_closed(qtbot):
    """Keeps every widget given to ``qtbot.addWidget`` alive until pytest-qt has closed it.

    pytest-qt holds them by weak reference and processes events once more after the test
    function has returned. A widget that only a reference cycle still holds (its signals
    connected to its own methods) may then be collected by the garbage collector in the middle
    of painting itself, and Qt crashes on the painter's freed device ("QPaintDevice: Cannot
    destroy paint device that is being painted", then a segmentation fault). In the app the
    window holds its widgets; here this fixture does, and they are collected after closing.
    """
    kept: list[object] = []
    add_widget = qtbot.addWidget

    def keep_and_add(widget, *args, **kwargs):
        kept.append(widget)
        return add_widget(widget, *args, **kwargs)

    qtbot.addWidget = keep_and_add
    yield
    kept.clear()
    gc.collect()
