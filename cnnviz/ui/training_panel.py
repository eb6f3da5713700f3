"""The training dock: data set and hyper-parameters, Start / Pause / Stop, progress, live curves.

Training runs in a :class:`~cnnviz.ui.workers.TrainWorker` (its own thread; the data set loads
there too), so the window stays fluid. The panel builds the model from the graph once per model
and keeps it: a second Start continues training the same weights (with "default"
initialisation), and the curves go on where they stopped. A new graph starts afresh.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, QTimer, Signal, Slot
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from cnnviz.ui.plots import TrainingCurvesView
from cnnviz.ui.workers import DatasetWorker, TrainingImportWorker, TrainWorker

DATASET_CHOICES: tuple[tuple[str, str], ...] = (
    ("shapes", "Shapes (built in)"),
    ("mnist", "MNIST"),
    ("fashion-mnist", "Fashion-MNIST"),
    ("cifar10", "CIFAR-10"),
    ("folder", "Image folder…"),
)
"""(key, label) of the data sets offered; "folder" is a folder with one sub-folder per class."""

# Config fields shown as text boxes: typed values are checked by TrainConfig itself, so the
# message next to the field is exactly the one the command line gives.
_NUMBER_FIELDS = {
    "lr": float,
    "momentum": float,
    "weight_decay": float,
    "batch_size": int,
    "epochs": int,
    "seed": int,
}
# The progress bar's text (batch, time left, images/s) changes at most this often: read at
# 20 changes a second it is a blur, and each change repaints the bar in the GUI thread, whose
# time is taken from training (benchmarks/training.py). Epoch reports always show.
PROGRESS_INTERVAL_S = 0.25

_ERROR_STYLE = "color: #b3261e;"
_INFO_STYLE = "color: #39414d;"
_OK_STYLE = "color: #2e6b34;"


def _format_seconds(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    minutes, sec = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{sec:02d}" if hours else f"{minutes}:{sec:02d}"


class TrainingPanel(QWidget):
    """Configure, start, pause and stop training, and watch its curves.

    Signals:
        sig_run_started(model, data): training begins (the data set is loaded), in the GUI
            thread, before any ``sig_probe`` of the run.
        sig_run_finished(kind): ``"finished"``, ``"stopped"`` or ``"failed"``.
        sig_probe(object): what the observer returned, from the training thread.
        sig_model_built(model): :meth:`ensure_model` built a new ``nn.Module``.
        sig_state_changed(): training started, paused, resumed or ended, or the model or a
            field changed whether Start is possible (the window updates its menu).

    Attributes:
        curves: The live curves.
        reports: Every report shown since the model was set (the CSV export writes them).
        worker: The running worker, or None.
        shapes_size: Images generated for the shapes data set (None: the default 12,000).
        max_steps_per_epoch: Cut every epoch short after this many batches (demonstrations,
            tests), or None.
    """

    sig_run_started = Signal(object, object)
    sig_run_finished = Signal(str)
    sig_probe = Signal(object)
    sig_model_built = Signal(object)
    sig_state_changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.graph: Any = None
        self.analysis: Any = None
        self.worker: TrainWorker | None = None
        self.reports: list[Any] = []
        self.shapes_size: int | None = None
        self.max_steps_per_epoch: int | None = None
        self.last_message = ""
        self._model: Any = None
        self._data_key: tuple | None = None
        self._data: Any = None
        self._observer: Callable[[Any, Any], object | None] | None = None
        self._epoch_offset = 0.0
        self._rate: float | None = None
        self._progress_shown_at = -math.inf
        self._progress_waiting: Any | None = None
        self._progress_timer = QTimer(self)
        self._progress_timer.setSingleShot(True)
        self._progress_timer.timeout.connect(self._on_progress_timer_timeout)
        self._previous_report: Any = None
        self._smoothed: tuple[float, float] | None = None
        self._run_batch_size = 0
        self._download_worker: DatasetWorker | None = None
        self._pending_key: tuple | None = None
        self._download_key: tuple | None = None
        self._prewarm: TrainingImportWorker | None = None
        self._build()
        self._update_state()

    # ----------------------------------------------------------------- construction
    def _build(self) -> None:
        from cnnviz.core.training import INITS, OPTIMIZERS, SCHEDULES, TrainConfig

        defaults = TrainConfig()
        settings = QWidget()
        grid = QGridLayout(settings)
        grid.setContentsMargins(6, 6, 6, 6)
        grid.setHorizontalSpacing(8)
        grid.setVerticalSpacing(3)
        self._grid = grid
        self._row = 0
        self._field_widgets: dict[str, QWidget] = {}
        self._field_errors: dict[str, QLabel] = {}

        self.dataset_combo = QComboBox()
        for key, label in DATASET_CHOICES:
            self.dataset_combo.addItem(label, key)
        self.dataset_combo.setToolTip(
            "Shapes: ten classes of drawn shapes and textures, generated here (no download), "
            "drawn at the model's input size.\nMNIST, Fashion-MNIST, CIFAR-10: files in the "
            "data folder.\nImage folder: one sub-folder of images per class."
        )
        self._add_field("dataset", "Data set", self.dataset_combo)
        self.folder_edit = QLineEdit()
        self.folder_edit.setPlaceholderText(self._default_data_root())
        self.browse_button = QPushButton("Browse…")
        self.browse_button.clicked.connect(self._on_browse_clicked)
        folder_row = QWidget()
        folder_layout = QHBoxLayout(folder_row)
        folder_layout.setContentsMargins(0, 0, 0, 0)
        folder_layout.addWidget(self.folder_edit, 1)
        folder_layout.addWidget(self.browse_button)
        self._folder_label = self._add_field("folder", "Data folder", folder_row)
        self.fit_check = QCheckBox("Fit images to the model")
        self.fit_check.setToolTip(
            "Resize MNIST, Fashion-MNIST or CIFAR-10 images to the model's input and convert "
            "grey and colour, instead of refusing a mismatch"
        )
        self._add_field("fit", "", self.fit_check)
        self.download_button = QPushButton("Download")
        self.download_button.setToolTip(
            "Fetch the missing files from the internet into the data folder"
        )
        self.download_button.clicked.connect(self._on_download_clicked)
        self.download_button.hide()
        self._add_field("download", "", self.download_button)

        self.optimizer_combo = QComboBox()
        labels = {"sgd": "SGD", "adam": "Adam", "adamw": "AdamW"}
        for name in OPTIMIZERS:
            self.optimizer_combo.addItem(labels.get(name, name), name)
        self.optimizer_combo.setCurrentIndex(OPTIMIZERS.index(defaults.optimizer))
        self._add_field("optimizer", "Optimizer", self.optimizer_combo)
        self.lr_edit = self._add_text("lr", "Learning rate", f"{defaults.lr:g}")
        self.momentum_edit = self._add_text("momentum", "Momentum (SGD)", f"{defaults.momentum:g}")
        self.weight_decay_edit = self._add_text(
            "weight_decay", "Weight decay", f"{defaults.weight_decay:g}"
        )
        self.schedule_combo = QComboBox()
        for name in SCHEDULES:
            self.schedule_combo.addItem(name, name)
        self.schedule_combo.setToolTip(
            "step: x0.1 every epoch; cosine: down to 0 over the run; one-cycle: warm up to the "
            "learning rate, then anneal. The rate changes after every batch."
        )
        self._add_field("schedule", "Schedule", self.schedule_combo)
        self.init_combo = QComboBox()
        init_labels = {
            "default": "keep (continue training)",
            "xavier": "Xavier (Glorot)",
            "he": "He (Kaiming)",
            "zeros": "zeros (learns nothing)",
        }
        for name in INITS:
            self.init_combo.addItem(init_labels.get(name, name), name)
        self.init_combo.setToolTip(
            "Weights of convolutions and linear layers when Start is pressed; 'keep' goes on "
            "from the weights the model has"
        )
        self._add_field("init", "Initialisation", self.init_combo)
        self.batch_size_edit = self._add_text("batch_size", "Batch size", "64")
        self.epochs_edit = self._add_text("epochs", "Epochs", "5")
        self.seed_edit = self._add_text("seed", "Seed", "0")
        self.seed_edit.setToolTip("The same seed gives the same curves; empty for a random one")
        self.device_combo = QComboBox()
        self._fill_devices()
        self._add_field("device", "Device", self.device_combo)
        self.general_error = QLabel("")
        self.general_error.setWordWrap(True)
        self.general_error.setStyleSheet(_ERROR_STYLE)
        self.general_error.hide()
        grid.addWidget(self.general_error, self._row, 0, 1, 2)
        grid.setRowStretch(self._row + 1, 1)
        grid.setColumnStretch(1, 1)

        scroll = QScrollArea()
        scroll.setWidget(settings)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setMinimumWidth(250)
        scroll.setMaximumWidth(360)

        self.start_button = QPushButton("Start")
        self.start_button.setDefault(True)
        self.start_button.setStyleSheet("font-weight: 600;")
        self.pause_button = QPushButton("Pause")
        self.stop_button = QPushButton("Stop")
        self.export_button = QPushButton("CSV…")
        self.save_button = QPushButton("Save…")
        self.load_button = QPushButton("Load…")
        self.export_button.setToolTip(
            "Export the metrics: every report shown (loss, accuracy, rate) as a CSV file"
        )
        self.save_button.setToolTip("Save a checkpoint of the model's weights (atomically)")
        self.load_button.setToolTip(
            "Load a checkpoint saved by cnnviz into this model (weights only: no code in the "
            "file runs)"
        )
        # As narrow as their text: the panel then fits beside the activations on a 1600-pixel
        # screen (the style's minimum button width would add about 150 pixels).
        for button in (
            self.start_button,
            self.pause_button,
            self.stop_button,
            self.export_button,
            self.save_button,
            self.load_button,
        ):
            button.setMinimumWidth(button.fontMetrics().horizontalAdvance(button.text()) + 24)
        self.start_button.clicked.connect(self._on_start_clicked)
        self.pause_button.clicked.connect(self._on_pause_clicked)
        self.stop_button.clicked.connect(self._on_stop_clicked)
        self.export_button.clicked.connect(self._on_export_clicked)
        self.save_button.clicked.connect(self._on_save_clicked)
        self.load_button.clicked.connect(self._on_load_clicked)
        buttons = QHBoxLayout()
        for button in (self.start_button, self.pause_button, self.stop_button):
            buttons.addWidget(button)
        buttons.addSpacing(8)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setValue(0)
        self.progress.setTextVisible(True)
        self.progress.setFormat("Not started")
        self.progress.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.progress.setMinimumWidth(90)
        buttons.addWidget(self.progress, 1)
        buttons.addSpacing(8)
        for button in (self.export_button, self.save_button, self.load_button):
            buttons.addWidget(button)
        self.message = QLabel("")
        self.message.setWordWrap(True)
        self.message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.curves = TrainingCurvesView()
        right = QVBoxLayout()
        right.setContentsMargins(4, 4, 4, 4)
        right.addLayout(buttons)
        right.addWidget(self.message)
        right.addWidget(self.curves, 1)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(scroll)
        layout.addLayout(right, 1)

        self.dataset_combo.currentIndexChanged.connect(self._on_dataset_changed)
        self.folder_edit.textChanged.connect(self._on_dataset_changed)
        self.fit_check.toggled.connect(self._on_dataset_changed)
        for edit in (
            self.lr_edit,
            self.momentum_edit,
            self.weight_decay_edit,
            self.batch_size_edit,
            self.epochs_edit,
            self.seed_edit,
        ):
            edit.textChanged.connect(self._on_field_edited)
        for combo in (self.optimizer_combo, self.schedule_combo, self.init_combo):
            combo.currentIndexChanged.connect(self._on_field_edited)
        self._on_dataset_changed()

    def _add_field(self, name: str, label: str, widget: QWidget) -> QLabel:
        caption = QLabel(label)
        self._grid.addWidget(caption, self._row, 0)
        self._grid.addWidget(widget, self._row, 1)
        error = QLabel("")
        error.setWordWrap(True)
        error.setStyleSheet(_ERROR_STYLE)
        error.hide()
        self._grid.addWidget(error, self._row + 1, 0, 1, 2)
        self._row += 2
        self._field_widgets[name] = widget
        self._field_errors[name] = error
        return caption

    def _add_text(self, name: str, label: str, text: str) -> QLineEdit:
        edit = QLineEdit(text)
        self._add_field(name, label, edit)
        return edit

    def _fill_devices(self) -> None:
        import torch

        available = {
            "auto": True,
            "cpu": True,
            "cuda": torch.cuda.is_available(),
            "mps": torch.backends.mps.is_available(),
        }
        labels = {"auto": "automatic", "cpu": "CPU", "cuda": "CUDA GPU", "mps": "Apple MPS"}
        for name, ok in available.items():
            self.device_combo.addItem(labels[name], name)
            item = self.device_combo.model().item(self.device_combo.count() - 1)
            item.setEnabled(ok)
            if not ok:
                item.setToolTip(f"{labels[name]} is not available on this computer")
        self.device_combo.setToolTip("automatic: CUDA, else Apple MPS, else the CPU")

    @staticmethod
    def _default_data_root() -> str:
        from cnnviz.paths import data_dir

        return str(data_dir() / "datasets")

    # ----------------------------------------------------------------- public API
    def set_model(self, graph: Any, analysis: Any) -> None:
        """Show a new model: the built module, the curves and the reports start afresh.

        A running training is stopped first (within one batch).
        """
        self.shutdown()
        if self._prewarm is None and "torch._dynamo" not in sys.modules:
            # A model to train is here: import what the first optimizer needs now, in the
            # background, rather than after the click on Start.
            self._prewarm = TrainingImportWorker(self)
            self._prewarm.start()
        self.graph, self.analysis = graph, analysis
        self._model = None
        self.reports = []
        self._epoch_offset = 0.0
        self.curves.clear()
        self.progress.setValue(0)
        self.progress.setFormat("Not started")
        self._show_message("")
        self._update_state()

    def set_observer(self, observer: Callable[[Any, Any], object | None] | None) -> None:
        """Call ``observer(model, report)`` in the training thread after every report.

        What it returns, when not None, arrives through :attr:`sig_probe`. Takes effect at once,
        also in a run that is going on.
        """
        self._observer = observer
        if self.worker is not None:
            self.worker.observer = observer

    def ensure_model(self) -> Any:
        """The ``nn.Module`` of the current graph, built once per model and kept.

        Raises:
            CnnvizError: No model is set, or the graph cannot be built.
        """
        from cnnviz.errors import CnnvizError

        if self._model is None:
            if self.graph is None:
                raise CnnvizError("no model to train: open one first")
            from cnnviz.core.build import build_module

            self._model = build_module(self.graph)
            self.sig_model_built.emit(self._model)
        return self._model

    def ensure_dataset(self) -> Any:
        """The :class:`~cnnviz.core.data.DatasetBundle` of the chosen data set, fitted to the
        model's input, loaded once and kept while the choice stays the same.

        Loading here blocks the calling thread (up to seconds); Start loads it in the training
        thread instead.

        Raises:
            DatasetError: Missing files (which ones, where), a shape mismatch, unreadable data.
        """
        key = self._dataset_key()
        if self._data is not None and self._data_key == key:
            return self._data
        bundle = self._load_data(key, download=False)
        self._data, self._data_key = bundle, key
        return bundle

    def is_training(self) -> bool:
        """True from Start until the run has ended (paused included)."""
        return self.worker is not None

    def is_paused(self) -> bool:
        """True while a run is paused."""
        return self.worker is not None and self.worker.control.paused

    def start_block_reason(self) -> str:
        """Why Start is not possible now, or "" when it is."""
        if self.graph is None:
            return "Open a model to train it"
        if self.analysis is not None and self.analysis.errors:
            name, error = self.analysis.errors[0]
            more = len(self.analysis.errors) - 1
            extra = f" (and {more} more)" if more else ""
            return f"The model has errors; fix them to train: {name}: {error}{extra}"
        if self.worker is not None:
            return "Training is running"
        if self._download_worker is not None:
            return "The data set is downloading"
        return ""

    def read_config(self) -> Any | None:
        """The :class:`~cnnviz.core.training.TrainConfig` of the fields, or None.

        An invalid value is shown in red under its field (the message names the range), and
        the others are cleared.
        """
        from cnnviz.core.training import TrainConfig, TrainConfigError

        for label in self._field_errors.values():
            label.hide()
        self.general_error.hide()
        values: dict[str, Any] = {
            "optimizer": self.optimizer_combo.currentData(),
            "schedule": self.schedule_combo.currentData(),
            "init": self.init_combo.currentData(),
            "device": self.device_combo.currentData(),
            "report_every_n_steps": 1,
            "max_steps_per_epoch": self.max_steps_per_epoch,
        }
        edits = {
            "lr": self.lr_edit,
            "momentum": self.momentum_edit,
            "weight_decay": self.weight_decay_edit,
            "batch_size": self.batch_size_edit,
            "epochs": self.epochs_edit,
            "seed": self.seed_edit,
        }
        for name, edit in edits.items():
            text = edit.text().strip()
            if name == "seed" and not text:
                values[name] = None
                continue
            kind = _NUMBER_FIELDS[name]
            try:
                values[name] = kind(text)
            except ValueError:
                what = "an integer" if kind is int else "a number"
                self._show_field_error(name, f"{name} must be {what}, got {text!r}")
                return None
        try:
            return TrainConfig(**values)
        except TrainConfigError as exc:
            field = str(exc).split(" ", 1)[0].rstrip(":")
            self._show_field_error(field, str(exc))
            return None

    def start(self) -> bool:
        """Start training with the fields' settings (what the Start button does).

        Returns:
            True when a run was started; otherwise the message says why.
        """
        from cnnviz.core.data import DatasetError, model_data_mismatch
        from cnnviz.errors import CnnvizError

        reason = self.start_block_reason()
        if reason:
            self._show_message(reason, error=self.worker is None)
            return False
        config = self.read_config()
        if config is None:
            self._show_message("Fix the setting marked in red to start.", error=True)
            return False
        try:
            model = self.ensure_model()
        except CnnvizError as exc:
            self._show_message(str(exc), error=True)
            return False
        key = self._dataset_key()
        if key[0] == "folder" and not key[1]:
            self._show_field_error("folder", "choose the image folder (one sub-folder per class)")
            self._show_message("Choose an image folder to train on.", error=True)
            return False
        output_shape = self._output_shape()
        if self._data is not None and self._data_key == key:
            problem = model_data_mismatch(output_shape, self._data)
            if problem:
                self._show_message(problem, error=True)
                return False
            data: Any = self._data
        else:

            def data() -> Any:  # runs in the training thread
                bundle = self._load_data(key, download=False)
                problem = model_data_mismatch(output_shape, bundle)
                if problem:
                    raise DatasetError(problem)
                return bundle

            self._pending_key = key
        self.start_run(model, data, config)
        return True

    def start_run(
        self, model: Any, data: Any, config: Any, control: Any | None = None
    ) -> TrainWorker:
        """Train ``model`` on ``data`` (a bundle, or a function loading one in the training
        thread) with ``config``, showing the curves and progress. For :meth:`start`, and for
        benchmarks and tests that need a model or configuration of their own.

        Returns:
            The worker, already started.
        """
        worker = TrainWorker(model, data, config, self._observer, control, parent=self)
        worker.sig_data_ready.connect(self._on_worker_data_ready)
        worker.sig_step.connect(self._on_worker_step)
        worker.sig_epoch.connect(self._on_worker_epoch)
        worker.sig_failed.connect(self._on_worker_failed)
        worker.sig_finished.connect(self._on_worker_finished)
        worker.sig_probe.connect(self.sig_probe)
        worker.sig_observer_failed.connect(self._on_worker_observer_failed)
        self.worker = worker
        self._run_batch_size = config.batch_size
        self._rate = None
        self._progress_shown_at = -math.inf
        self._previous_report = None
        self._smoothed = None
        self.download_button.hide()
        self._field_errors["folder"].hide()
        self._show_message("Loading the data set…" if worker.data is None else "Training…")
        self.progress.setFormat("Starting…")
        self._update_state()
        worker.start()
        if worker.data is not None:
            self.sig_run_started.emit(model, worker.data)
        return worker

    def pause(self) -> None:
        """Pause before the next batch."""
        if self.worker is not None and not self.worker.control.paused:
            self.worker.pause()
            step = self.reports[-1].global_step if self.reports else 0
            self._show_message(f"Paused (after batch {step}). Resume goes on from here.")
            self._update_state()

    def resume(self) -> None:
        """Go on after :meth:`pause`."""
        if self.worker is not None and self.worker.control.paused:
            self.worker.resume()
            self._show_message("Training…")
            self._update_state()

    def toggle_pause(self) -> None:
        """Pause a running training, resume a paused one."""
        if self.is_paused():
            self.resume()
        else:
            self.pause()

    def stop(self) -> None:
        """End the run before its next batch; the weights and the curves are kept."""
        if self.worker is not None:
            self.worker.stop()
            self._show_message("Stopping after this batch…")
            self._update_state()

    def shutdown(self, timeout_ms: int = 30_000) -> bool:
        """Stop any run and download and wait for their threads (closing the window).

        Returns:
            True when no thread is left running.
        """
        done = True
        for worker in (self.worker, self._download_worker, self._prewarm):
            if worker is None:
                continue
            if isinstance(worker, TrainWorker):
                worker.stop()
            done = worker.wait(timeout_ms) and done
        # The queued sig_finished will not be delivered to a closing window; end the run here.
        if self.worker is not None and not self.worker.isRunning():
            self._end_run(self.worker.last_report, self.worker)
        return done

    def export_csv(self, path: str | os.PathLike[str]) -> Path:
        """Write :attr:`reports` as CSV (one row per report, a header of the fields)."""
        from cnnviz.core.training import metrics_to_csv

        return metrics_to_csv(self.reports, path)

    def save_checkpoint(self, path: str | os.PathLike[str]) -> Path:
        """Save the model's weights and the settings (atomically).

        Raises:
            CnnvizError: No model, training is running (not paused), or the file cannot be
                written.
        """
        from cnnviz.core.training import save_checkpoint
        from cnnviz.errors import CnnvizError

        if self.worker is not None and not self.is_paused():
            raise CnnvizError("pause or stop training before saving a checkpoint")
        model = self.ensure_model()
        config = self.read_config()
        last = next((r for r in reversed(self.reports) if r.val_loss is not None), None)
        metrics = {"val_loss": last.val_loss, "val_accuracy": last.val_accuracy} if last else {}
        epochs = int(math.floor(self._epoch_offset))
        return save_checkpoint(path, model, None, config, epochs, metrics)

    def load_checkpoint(self, path: str | os.PathLike[str]) -> dict[str, Any]:
        """Load weights saved by cnnviz into the model (``weights_only``: no code runs).

        Raises:
            CnnvizError: Training is running, or the file is missing, damaged or does not fit
                the model (nothing is changed then).
        """
        from cnnviz.core.training import load_checkpoint
        from cnnviz.errors import CnnvizError

        if self.worker is not None:
            raise CnnvizError("stop training before loading a checkpoint")
        return load_checkpoint(path, self.ensure_model())

    # ----------------------------------------------------------------- data
    def _input_shape(self) -> tuple[int, ...] | None:
        shape = getattr(self.analysis, "input_shape", None)
        if shape is None and self.graph is not None:
            shape = self.graph.input_shape
        return tuple(int(s) for s in shape) if shape else None

    def _output_shape(self) -> Any:
        if self.analysis is None or not self.analysis.order:
            return None
        node = self.analysis.nodes.get(self.analysis.order[-1])
        return getattr(node, "output_shape", None)

    def _dataset_key(self) -> tuple:
        choice = self.dataset_combo.currentData()
        folder = self.folder_edit.text().strip()
        if choice == "shapes":
            folder = ""
        fit = self.fit_check.isChecked() and choice in ("mnist", "fashion-mnist", "cifar10")
        return (choice, folder, fit, self._input_shape(), self.shapes_size)

    def _load_data(self, key: tuple, download: bool) -> Any:
        from cnnviz.core.data import load_dataset_for_model

        choice, folder, fit, input_shape, shapes_size = key
        if choice == "shapes":
            return load_dataset_for_model("shapes", input_shape, train_size=shapes_size)
        if choice == "folder":
            return load_dataset_for_model(folder, input_shape)
        return load_dataset_for_model(
            choice, input_shape, folder or None, fit=fit, download=download
        )

    # ----------------------------------------------------------------- worker slots
    @Slot(object)
    def _on_worker_data_ready(self, bundle: Any) -> None:
        if self.sender() is not self.worker or self.worker is None:
            return
        if self._pending_key is not None:
            self._data, self._data_key = bundle, self._pending_key
            self._pending_key = None
        self._show_message(f"Training on {bundle.name} ({len(bundle.train):,} images)…")
        self.sig_run_started.emit(self.worker.model, bundle)

    def _x(self, report: Any) -> float:
        return (
            self._epoch_offset + (report.epoch - 1) + report.step / max(1, report.steps_per_epoch)
        )

    def _recent_training(self, report: Any) -> tuple[float | None, float | None]:
        """Loss and accuracy of the recent batches, smoothed (10-batch time constant).

        The reports carry means since the start of the epoch, which jump back at every new
        epoch; the means of just the batches since the previous report follow from them
        exactly (equal batches), and are continuous across epochs.
        """
        previous = self._previous_report
        if previous is not None and previous.epoch == report.epoch:
            batches = report.step - previous.step
            if batches <= 0:
                return None, None
            loss = (report.train_loss * report.step - previous.train_loss * previous.step) / batches
            accuracy = (
                report.train_accuracy * report.step - previous.train_accuracy * previous.step
            ) / batches
        else:
            batches = report.step
            loss, accuracy = report.train_loss, report.train_accuracy
        if self._smoothed is None or not all(map(math.isfinite, self._smoothed)):
            self._smoothed = (loss, accuracy)
        else:
            weight = 1.0 - math.exp(-batches / 10.0)
            self._smoothed = (
                self._smoothed[0] + weight * (loss - self._smoothed[0]),
                self._smoothed[1] + weight * (accuracy - self._smoothed[1]),
            )
        return self._smoothed

    @Slot(object)
    def _on_worker_step(self, report: Any) -> None:
        self.reports.append(report)
        loss, accuracy = self._recent_training(report)
        self.curves.add_point(
            self._x(report), train_loss=loss, train_accuracy=accuracy, lr=report.lr
        )
        self._show_progress(report)

    @Slot(object)
    def _on_worker_epoch(self, report: Any) -> None:
        self.reports.append(report)
        loss, accuracy = self._recent_training(report)
        self.curves.add_point(
            self._x(report),
            train_loss=loss,
            train_accuracy=accuracy,
            val_loss=report.val_loss,
            val_accuracy=report.val_accuracy,
            lr=report.lr,
        )
        self._show_progress(report)

    @Slot(str)
    def _on_worker_failed(self, message: str) -> None:
        self._show_message(
            f"Training failed: {message}\nThe model and its curves are kept.", error=True
        )

    @Slot(str)
    def _on_worker_observer_failed(self, message: str) -> None:
        self.general_error.setText(
            f"A probe failed and was switched off for this run ({message}); training goes on."
        )
        self.general_error.show()

    @Slot(object)
    def _on_worker_finished(self, last: Any) -> None:
        worker = self.sender()
        if worker is not self.worker:
            return
        self._end_run(last, worker)

    def _end_run(self, last: Any, worker: TrainWorker) -> None:
        from cnnviz.core.data import MissingDatasetError

        worker.wait()
        self.worker = None
        self._progress_timer.stop()
        self._progress_waiting = None
        worker.deleteLater()
        kind = last.kind if last is not None else ("stopped" if worker.error is None else "failed")
        if last is not None:
            self.reports.append(last)
            self._epoch_offset = self._x(last)
        if kind == "finished":
            accuracy = last.val_accuracy
            text = f"Finished {last.epochs} epoch(s) in {_format_seconds(last.elapsed_s)}"
            if accuracy is not None and math.isfinite(accuracy):
                text += f": validation accuracy {accuracy:.1%}, loss {last.val_loss:.3f}"
            self._show_message(text + ". Start again to train further.", ok=True)
            self.progress.setValue(1000)
            self.progress.setFormat("Done")
        elif kind == "stopped":
            where = f" at epoch {last.epoch}, batch {last.step}" if last is not None else ""
            self._show_message(
                f"Stopped{where}; the weights and the curves are kept. Start goes on training."
            )
            self.progress.setFormat("Stopped")
        else:
            if isinstance(worker.error, MissingDatasetError):
                self.download_button.show()
            self.progress.setFormat("Failed")
        self._update_state()
        self.sig_run_finished.emit(kind)

    def _show_progress(self, report: Any) -> None:
        previous = self._previous_report
        if previous is not None and report.elapsed_s > previous.elapsed_s:
            images = (report.global_step - previous.global_step) * self._run_batch_size
            rate = images / (report.elapsed_s - previous.elapsed_s)
            # A smoothed rate: a single window of 50 ms jumps with every validation pass.
            self._rate = rate if self._rate is None else 0.8 * self._rate + 0.2 * rate
        self._previous_report = report
        wait = self._progress_shown_at + PROGRESS_INTERVAL_S - time.perf_counter()
        if report.kind == "step" and wait > 0:
            # Shown when the interval is over, unless a newer report comes first.
            self._progress_waiting = report
            if not self._progress_timer.isActive():
                self._progress_timer.start(int(wait * 1000) + 1)
            return
        self._write_progress(report)

    @Slot()
    def _on_progress_timer_timeout(self) -> None:
        if self._progress_waiting is not None and self.worker is not None:
            self._write_progress(self._progress_waiting)

    def _write_progress(self, report: Any) -> None:
        self._progress_waiting = None
        self._progress_timer.stop()
        self._progress_shown_at = time.perf_counter()
        total = max(1, report.steps_per_epoch * report.epochs)
        self.progress.setValue(int(1000 * report.global_step / total))
        parts = [f"Epoch {report.epoch}/{report.epochs}"]
        parts.append(f"batch {report.step}/{report.steps_per_epoch}")
        if report.eta_s > 0:
            parts.append(f"{_format_seconds(report.eta_s)} left")
        if self._rate:
            parts.append(f"{self._rate:,.0f} images/s")
        self.progress.setFormat("  ·  ".join(parts))

    # ----------------------------------------------------------------- UI slots
    @Slot()
    def _on_start_clicked(self) -> None:
        self.start()

    @Slot()
    def _on_pause_clicked(self) -> None:
        self.toggle_pause()

    @Slot()
    def _on_stop_clicked(self) -> None:
        self.stop()

    @Slot()
    def _on_field_edited(self) -> None:
        self.read_config()
        self._update_state()

    @Slot()
    def _on_dataset_changed(self) -> None:
        choice = self.dataset_combo.currentData()
        self._field_errors["folder"].hide()
        self.download_button.hide()
        if choice == "folder":
            self._folder_label.setText("Image folder")
            self.folder_edit.setPlaceholderText("a folder with one sub-folder per class")
        else:
            self._folder_label.setText("Data folder")
            self.folder_edit.setPlaceholderText(self._default_data_root())
        self._update_state()

    @Slot()
    def _on_browse_clicked(self) -> None:
        start = self.folder_edit.text() or self._default_data_root()
        path = QFileDialog.getExistingDirectory(self, "Choose the data folder", start)
        if path:
            self.folder_edit.setText(path)

    @Slot()
    def _on_download_clicked(self) -> None:
        key = self._dataset_key()
        self.download_button.hide()
        self._show_message("Downloading… (the files go to the data folder)")
        worker = DatasetWorker(lambda: self._load_data(key, download=True), parent=self)
        self._download_key = key
        worker.sig_loaded.connect(self._on_download_loaded)
        worker.sig_failed.connect(self._on_download_failed)
        worker.finished.connect(self._on_download_finished)
        self._download_worker = worker
        self._update_state()
        worker.start()

    @Slot(object)
    def _on_download_loaded(self, bundle: Any) -> None:
        self._data, self._data_key = bundle, self._download_key
        self._show_message(f"{bundle.name} is ready ({len(bundle.train):,} training images).")

    @Slot(str)
    def _on_download_failed(self, message: str) -> None:
        self._show_message(message, error=True)
        self.download_button.show()

    @Slot()
    def _on_download_finished(self) -> None:
        worker, self._download_worker = self._download_worker, None
        if worker is not None:
            worker.wait()
            worker.deleteLater()
        self._update_state()

    @Slot()
    def _on_export_clicked(self) -> None:
        path, _ = QFileDialog.getSaveFileName(
            self, "Export metrics", "metrics.csv", "CSV files (*.csv)"
        )
        if path:
            try:
                self.export_csv(path)
            except OSError as exc:
                self._show_message(f"Cannot write {path}: {exc}", error=True)
                return
            self._show_message(f"Wrote {len(self.reports)} rows to {path}.", ok=True)

    @Slot()
    def _on_save_clicked(self) -> None:
        from cnnviz.errors import CnnvizError

        path, _ = QFileDialog.getSaveFileName(
            self, "Save checkpoint", "checkpoint.pt", "Checkpoints (*.pt)"
        )
        if path:
            try:
                self.save_checkpoint(path)
            except CnnvizError as exc:
                self._show_message(str(exc), error=True)
                return
            self._show_message(f"Saved the weights to {path}.", ok=True)

    @Slot()
    def _on_load_clicked(self) -> None:
        from cnnviz.errors import CnnvizError

        path, _ = QFileDialog.getOpenFileName(
            self, "Load checkpoint", "", "Checkpoints (*.pt *.pth);;All files (*)"
        )
        if path:
            try:
                info = self.load_checkpoint(path)
            except CnnvizError as exc:
                self._show_message(str(exc), error=True)
                return
            self._show_message(
                f"Loaded the weights of {path} (after {info['epoch']} epoch(s)).", ok=True
            )

    # ----------------------------------------------------------------- state
    def _show_field_error(self, field: str, text: str) -> None:
        label = self._field_errors.get(field)
        if label is None:
            label = self.general_error
        label.setText(text)
        label.show()

    def _show_message(self, text: str, error: bool = False, ok: bool = False) -> None:
        self.last_message = text
        self.message.setText(text)
        self.message.setStyleSheet(_ERROR_STYLE if error else _OK_STYLE if ok else _INFO_STYLE)
        self.message.setVisible(bool(text))

    def _update_state(self) -> None:
        training = self.worker is not None
        reason = self.start_block_reason()
        self.start_button.setEnabled(not reason)
        self.start_button.setToolTip(reason or "Start training (F5)")
        self.pause_button.setEnabled(training)
        self.pause_button.setText("Resume" if self.is_paused() else "Pause")
        self.pause_button.setToolTip("Pause or resume before the next batch (F6)")
        self.stop_button.setEnabled(training)
        self.stop_button.setToolTip("Stop after this batch; the weights are kept (Shift+F5)")
        has_model = self.graph is not None
        self.export_button.setEnabled(bool(self.reports) or training)
        self.save_button.setEnabled(has_model and (not training or self.is_paused()))
        self.load_button.setEnabled(has_model and not training)
        for widget in self._field_widgets.values():
            if widget is not self.download_button:
                widget.setEnabled(not training)
        if not training:
            choice = self.dataset_combo.currentData()
            self.folder_edit.setEnabled(choice != "shapes")
            self.browse_button.setEnabled(choice != "shapes")
            self.fit_check.setEnabled(choice in ("mnist", "fashion-mnist", "cifar10"))
            self.momentum_edit.setEnabled(self.optimizer_combo.currentData() == "sgd")
        self.sig_state_changed.emit()
