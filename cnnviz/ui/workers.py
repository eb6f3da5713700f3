"""Every QThread of cnnviz lives here (DESIGN.md, rule 5)."""

from __future__ import annotations

import importlib
import logging
import math
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QThread, Signal


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


class TrainingImportWorker(ImportWorker):
    """Imports what the first training step needs, ahead of the first Start.

    Creating a torch optimizer imports ``torch._dynamo`` (about 900 modules: 1.6 to 2.5 s on
    the 2-core reference machine); paid at Start, it would hold the first curve point back.
    """

    MODULES = ("torch._dynamo", "torch.optim")


# Ten step reports a second draw a curve that moves smoothly; each one costs the GUI thread,
# and on 2 cores every millisecond of it is taken from training (benchmarks/training.py).
STEP_SIGNAL_INTERVAL_S = 0.1

_log = logging.getLogger(__name__)

# The training thread (and the OpenMP helpers it creates, which inherit it) runs at this
# niceness: when the GUI thread wakes (a repaint, a timer, a click) the scheduler gives it a
# core at once instead of after the spinning training threads' time slices; when the GUI idles,
# training still has every core.
TRAIN_THREAD_NICE = 5


def _lower_thread_priority(nice: int) -> None:
    """Raise the calling thread's niceness by ``nice`` (Linux: per thread; elsewhere nothing)."""
    if not hasattr(os, "setpriority") or not sys.platform.startswith("linux"):
        return
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + nice)
    except OSError:
        _log.debug("could not lower the training thread's priority", exc_info=True)


class TrainWorker(QThread):
    """Runs :func:`cnnviz.core.training.train` in its own thread and reports through signals.

    Signals are queued to the receiver's (GUI) thread. ``sig_step`` carries at most one
    :class:`~cnnviz.core.training.Report` per :data:`STEP_SIGNAL_INTERVAL_S` (the reports in
    between are dropped: their running means are in the next one); epoch reports always come.
    At the end ``sig_failed(message)`` comes first when the run failed (a non-finite loss, out
    of memory, a data set that cannot be loaded, an error in the model), then always
    ``sig_finished(last_report)``, with None when no report was made.

    The observer (probes) is called in this thread with ``(model, report)`` after every report
    the trainer yields (every ``config.report_every_n_steps`` batches, every epoch, and once for
    the final report); what it returns, when not None, is emitted with ``sig_probe``. Training
    waits while it runs, so it must be quick or act only every N steps
    (``report.global_step``). An exception in it is logged, turns it off for the rest of the
    run and is announced once with ``sig_observer_failed(message)``; training goes on.

    Args:
        model: The ``nn.Module`` to train (moved to the chosen device, and left there).
        data: A :class:`~cnnviz.core.data.DatasetBundle`, or a function returning one, called in
            this thread first (loading takes seconds that must not freeze the window); its
            result is announced with ``sig_data_ready(bundle)`` before any other signal.
        config: The :class:`~cnnviz.core.training.TrainConfig`.
        observer: ``observer(model, report) -> object | None``, or None.
        control: Stop and pause flags; a new :class:`~cnnviz.core.training.TrainControl` when
            None.
        parent: Qt parent.

    Attributes:
        control: The stop and pause flags (thread safe).
        data: The bundle trained on, once loaded.
        error: The exception that ended the run (None when it ended through a report).
        last_report: The last report made.
    """

    sig_data_ready = Signal(object)
    sig_step = Signal(object)
    sig_epoch = Signal(object)
    sig_failed = Signal(str)
    sig_finished = Signal(object)
    sig_probe = Signal(object)
    sig_observer_failed = Signal(str)

    def __init__(
        self,
        model: Any,
        data: Any,
        config: Any,
        observer: Callable[[Any, Any], object | None] | None = None,
        control: Any | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        from cnnviz.core.training import TrainControl

        self.model = model
        self.data = None if callable(data) else data
        self._data_source = data
        self.config = config
        self.observer = observer
        self.control = control if control is not None else TrainControl()
        self.error: BaseException | None = None
        self.last_report: Any | None = None

    # Thread safe: they only set flags that the loop reads before every batch.
    def pause(self) -> None:
        """Pause before the next batch."""
        self.control.pause()

    def resume(self) -> None:
        """Go on after :meth:`pause`."""
        self.control.resume()

    def stop(self) -> None:
        """End the run before the next batch (also when paused); the weights are kept."""
        self.control.stop()

    def _observe(self, report: Any) -> None:
        observer = self.observer
        if observer is None:
            return
        try:
            result = observer(self.model, report)
        except Exception as exc:  # noqa: BLE001 - a probe must never end a training run
            _log.exception("training observer failed; it is switched off for this run")
            self.observer = None
            self.sig_observer_failed.emit(f"{type(exc).__name__}: {exc}")
            return
        if result is not None:
            self.sig_probe.emit(result)

    def run(self) -> None:  # noqa: D102 - QThread entry point
        from cnnviz.core.training import train
        from cnnviz.errors import CnnvizError

        last_step_signal = -math.inf
        _lower_thread_priority(TRAIN_THREAD_NICE)
        try:
            if self.data is None:
                self.data = self._data_source()
                self.sig_data_ready.emit(self.data)
            if self.control.stop_requested:
                self.sig_finished.emit(None)
                return
            for report in train(self.model, self.data, self.config, self.control):
                self.last_report = report
                if report.kind == "step":
                    now = time.perf_counter()
                    if now - last_step_signal >= STEP_SIGNAL_INTERVAL_S:
                        last_step_signal = now
                        self.sig_step.emit(report)
                elif report.kind == "epoch":
                    self.sig_epoch.emit(report)
                elif report.kind == "failed":
                    self.sig_failed.emit(report.message)
                self._observe(report)
        except CnnvizError as exc:
            self.error = exc
            self.sig_failed.emit(str(exc))
        except Exception as exc:  # noqa: BLE001 - reported to the window, not raised in a thread
            self.error = exc
            _log.exception("training failed")
            self.sig_failed.emit(f"training failed: {type(exc).__name__}: {exc}")
        self.sig_finished.emit(self.last_report)


class DatasetWorker(QThread):
    """Loads (or downloads, when the user asked for it) a data set off the GUI thread.

    Args:
        load: A function returning a :class:`~cnnviz.core.data.DatasetBundle`.
        parent: Qt parent.
    """

    sig_loaded = Signal(object)
    sig_failed = Signal(str)

    def __init__(self, load: Callable[[], Any], parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._load = load

    def run(self) -> None:  # noqa: D102 - QThread entry point
        try:
            bundle = self._load()
        except Exception as exc:  # noqa: BLE001 - reported to the window, not raised in a thread
            _log.info("data set loading failed: %s", exc)
            self.sig_failed.emit(str(exc))
            return
        self.sig_loaded.emit(bundle)
