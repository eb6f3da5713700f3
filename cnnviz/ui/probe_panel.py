"""The probe panel: activations, filters, receptive fields, Grad-CAM and errors, in tabs.

It is the body of the Activations dock and the one place that talks to the core probes: the
views below it only get frozen snapshots. Outside training it probes the model directly in the
GUI thread (a few milliseconds for a probe batch of 8 images). During training the model belongs
to the training thread, so every request goes through a :class:`ProbeObserver` that the training
panel calls between steps; the answers come back through the training panel's ``sig_probe``.
Captures made during training are kept in a bounded :class:`Timeline`, which the slider at the
bottom replays.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import Qt, QTimer, Slot
from PySide6.QtWidgets import (
    QCheckBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSlider,
    QSplitter,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from cnnviz.core.probes import (
    ProbeBatch,
    ProbeBundle,
    ProbeObserver,
    Prober,
    Timeline,
    capture_bundle,
    first_conv_layer,
    rf_by_depth,
)
from cnnviz.errors import CnnvizError
from cnnviz.ui.activation_view import ActivationView
from cnnviz.ui.cam_view import CamView, ErrorsView
from cnnviz.ui.filter_view import FilterView
from cnnviz.ui.live_text import LiveText
from cnnviz.ui.receptive_field_view import ReceptiveFieldView

CAPTURE_EVERY_N_STEPS = 10
"""Steps between two captures during training (each costs one forward of the probe batch)."""
CAPTURE_MIN_INTERVAL_S = 1.0
"""Seconds at least between two captures during training: LeNet-5 makes 10 steps in a tenth
of a second, and every capture shown repaints the activation maps in the GUI thread, whose time
is taken from training (``benchmarks/training.py``)."""
PROBE_IMAGES = 8
CACHE_BYTES = 32 * 2**20
"""Outside training, keep every node's output for the probe batch when it fits in this: one
forward pass then serves every layer the user clicks (16 MB for the teaching ResNet-18)."""


class ProbePanel(QWidget):
    """Tabs of probe views for the selected layer, live during training, with a replay slider."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.graph = None
        self.analysis = None
        self.layer: str | None = None
        self.first_conv: str | None = None
        self.timeline = Timeline()
        self.observer: ProbeObserver | None = None
        self.batch: ProbeBatch | None = None
        self._batch_source: Any = None
        self._prober: Prober | None = None
        self._model_provider: Callable[[], Any] | None = None
        self._data_provider: Callable[[], Any] | None = None
        self._training: Callable[[], bool] = lambda: False
        self._dirty = False
        self._building = False
        self._shown_step = 0

        self.activation_view = ActivationView()
        self.rf_side = ReceptiveFieldView(show_chart=False)
        self.filter_view = FilterView()
        self.rf_view = ReceptiveFieldView()
        self.cam_view = CamView()
        self.errors_view = ErrorsView()
        activations = QSplitter(Qt.Orientation.Horizontal)
        activations.addWidget(self.activation_view)
        activations.addWidget(self.rf_side)
        activations.setStretchFactor(0, 3)
        activations.setStretchFactor(1, 2)
        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        self.tabs.addTab(activations, "Activations")
        self.tabs.addTab(self.filter_view, "Filters")
        self.tabs.addTab(self.rf_view, "Receptive field")
        self.tabs.addTab(self.cam_view, "Grad-CAM")
        self.tabs.addTab(self.errors_view, "Errors")

        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setEnabled(False)
        self.slider.setToolTip("Replay the snapshots taken during training")
        self.live = QCheckBox("live")
        self.live.setChecked(True)
        self.live.setToolTip("Show each new capture as training goes on")
        self.play = QPushButton("▶ replay")
        self.play.setEnabled(False)
        self.step_label = LiveText("no snapshots yet")  # changes with every capture
        self.step_label.setMinimumWidth(150)
        self._player = QTimer(self)
        self._player.setInterval(250)
        bar = QHBoxLayout()
        bar.setContentsMargins(4, 0, 4, 2)
        bar.addWidget(QLabel("Timeline"))
        bar.addWidget(self.slider, 1)
        bar.addWidget(self.step_label)
        bar.addWidget(self.play)
        bar.addWidget(self.live)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addWidget(self.tabs, 1)
        layout.addLayout(bar)

        self.activation_view.sig_unit_clicked.connect(self._on_activation_unit_clicked)
        self.cam_view.sig_class_changed.connect(self._on_cam_class_changed)
        self.errors_view.sig_compute_requested.connect(self._on_errors_compute_requested)
        self.tabs.currentChanged.connect(self._on_tabs_changed)
        self.slider.valueChanged.connect(self._on_slider_changed)
        self.live.toggled.connect(self._on_live_toggled)
        self.play.clicked.connect(self._on_play_clicked)
        self._player.timeout.connect(self._on_player_timeout)
        self.activation_view.set_message("Select a layer to see its activation maps.")

    # ------------------------------------------------------------ wiring
    def set_providers(
        self,
        model: Callable[[], Any],
        data: Callable[[], Any],
        training: Callable[[], bool] | None = None,
    ) -> None:
        """Where the model and data set come from, and whether training runs now."""
        self._model_provider = model
        self._data_provider = data
        self._training = training or (lambda: False)

    def attach_training_panel(self, panel: Any) -> None:
        """Probe the training panel's model and data set, and follow its runs."""
        self.set_providers(panel.ensure_model, panel.ensure_dataset, panel.is_training)
        panel.set_observer(self.observe)
        panel.sig_probe.connect(self._on_training_probe)
        panel.sig_run_started.connect(self._on_training_run_started)
        panel.sig_run_finished.connect(self._on_training_run_finished)
        panel.sig_model_built.connect(self._on_training_model_built)

    def observe(self, model: Any, report: Any) -> ProbeBundle | None:
        """The training panel's observer: runs in the training thread after each report."""
        observer = self.observer  # one read: the GUI thread may replace it meanwhile
        return None if observer is None else observer(model, report)

    # ------------------------------------------------------------ public
    def set_model(self, graph: Any, analysis: Any) -> None:
        """A new model was opened: forget the old probes, show the first convolution."""
        self.graph, self.analysis = graph, analysis
        self._prober = None
        self.observer = None
        self.timeline.clear()
        self._update_slider()
        self.first_conv = first_conv_layer(graph)
        self.layer = self.first_conv
        input_shape = graph.input_shape or (1, 1, 1)
        points = rf_by_depth(analysis)
        self.rf_view.set_depth(points, int(max(input_shape[1:] or (1,))))
        for view in (self.rf_view, self.rf_side):
            view.set_result(None)
        self.cam_view.set_message("Grad-CAM appears here for the probe images.")
        self.errors_view.set_message(
            "Press Evaluate for the confusion matrix of the validation split."
        )
        self.filter_view.set_filters(None)
        self.activation_view.set_message("Select a layer to see its activation maps.")
        self._request_refresh()

    def show_layer(self, name: str, is_group: bool = False) -> None:
        """Probe ``name`` (a group shows its output node); "" keeps the current layer."""
        if self.graph is None or not name:
            return
        if is_group and self.analysis is not None and name in self.analysis.groups:
            name = self.analysis.groups[name].output_node
        if name not in self.graph or self.graph[name].kind == "input":
            return
        self.layer = name
        self.rf_view.set_selected_layer(name)
        if self.observer is not None and self._training():
            self.observer.set_layer(name)
            self.activation_view.title.setText(
                f"<b>{name}</b> <span style='color:gray'>— captured at the next training "
                "report…</span>"
            )
            return
        self._request_refresh()

    def refresh(self) -> None:
        """Probe the current layer now (outside training)."""
        self._dirty = False
        if self.graph is None or self.layer is None:
            return
        prober = self._ensure_prober()
        if prober is None:
            return
        try:
            bundle = capture_bundle(prober, self.layer, self.first_conv, self._shown_step)
        except CnnvizError as exc:
            self.activation_view.set_message(f"Cannot probe {self.layer}: {exc}")
            return
        self._show_bundle(bundle)
        if self.tabs.currentWidget() is self.cam_view:
            self._compute_cam()

    # ------------------------------------------------------------ internals
    def _request_refresh(self) -> None:
        if self.isVisible():
            self.refresh()
        else:
            self._dirty = True

    def showEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().showEvent(event)
        if self._dirty:
            QTimer.singleShot(0, self.refresh)

    def _ensure_prober(self) -> Prober | None:
        if self._model_provider is None or self._data_provider is None:
            self.activation_view.set_message("No model to probe yet.")
            return None
        if self._training():
            return None  # the model belongs to the training thread now
        try:
            self._building = True
            model = self._model_provider()
            data = self._data_provider()
        except CnnvizError as exc:
            self.activation_view.set_message(f"Cannot probe: {exc}")
            return None
        finally:
            self._building = False
        if self.batch is None or self._batch_source is not data:
            try:
                self.batch = ProbeBatch.from_dataset(data, n=PROBE_IMAGES)
            except CnnvizError as exc:
                self.activation_view.set_message(f"Cannot pick probe images: {exc}")
                return None
            self._batch_source = data
            self.activation_view.class_names = self.batch.classes
            self.cam_view.set_classes(self.batch.classes)
            self._prober = None
        if self._prober is None or self._prober.model is not model:
            self._prober = Prober(
                model, self.graph, self.batch, self.analysis, cache_bytes=CACHE_BYTES
            )
        return self._prober

    def _show_bundle(self, bundle: ProbeBundle) -> None:
        if bundle.activations is not None:
            self.activation_view.set_snapshot(bundle.activations)
        self.filter_view.set_filters(bundle.first_filters, bundle.filters)

    def _update_slider(self) -> None:
        n = len(self.timeline)
        self.slider.blockSignals(True)
        self.slider.setRange(0, max(0, n - 1))
        if self.live.isChecked():
            self.slider.setValue(max(0, n - 1))
        self.slider.blockSignals(False)
        self.slider.setEnabled(n > 1)
        self.play.setEnabled(n > 1)
        self._update_step_label()

    def _update_step_label(self) -> None:
        n = len(self.timeline)
        if n == 0:
            self.step_label.setText("no snapshots yet")
            return
        i = min(self.slider.value(), n - 1)
        self.step_label.setText(f"step {self.timeline[i].step}  ({i + 1}/{n})")

    def _compute_cam(self) -> None:
        if self.observer is not None and self._training():
            self.observer.request_cam(self.cam_view.class_index)
            self.cam_view.title.setText("Grad-CAM: computed at the next training report…")
            return
        prober = self._ensure_prober()
        if prober is None:
            return
        try:
            self.cam_view.set_result(prober.grad_cam(None, self.cam_view.class_index))
        except CnnvizError as exc:
            self.cam_view.set_message(f"No Grad-CAM: {exc}")

    # ------------------------------------------------------------ slots
    @Slot(str, int, int, int, int)
    def _on_activation_unit_clicked(
        self, layer: str, channel: int, y: int, x: int, image_index: int
    ) -> None:
        if self.observer is not None and self._training():
            self.observer.request_receptive_field(layer, channel, y, x, image_index)
            self.rf_side.caption.setText("Receptive field: computed at the next training report…")
            return
        prober = self._ensure_prober()
        if prober is None:
            return
        try:
            result = prober.effective_receptive_field(layer, channel, y, x, image_index)
        except CnnvizError as exc:
            self.rf_side.caption.setText(str(exc))
            return
        self.rf_side.set_result(result)
        self.rf_view.set_result(result)

    @Slot(int)
    def _on_cam_class_changed(self, _index: int) -> None:
        self._compute_cam()

    @Slot()
    def _on_errors_compute_requested(self) -> None:
        if self.observer is not None and self._training():
            self.observer.request_confusion()
            self.errors_view.title.setText("Evaluating at the next training report…")
            return
        prober = self._ensure_prober()
        if prober is None or self._data_provider is None:
            return
        try:
            self.errors_view.set_result(
                prober.confusion(self._data_provider(), step=self._shown_step)
            )
        except CnnvizError as exc:
            self.errors_view.set_message(f"Cannot evaluate: {exc}")

    @Slot(int)
    def _on_tabs_changed(self, _index: int) -> None:
        if self.tabs.currentWidget() is self.cam_view and self.graph is not None:
            self._compute_cam()

    @Slot(int)
    def _on_slider_changed(self, value: int) -> None:
        if 0 <= value < len(self.timeline):
            if value < len(self.timeline) - 1:
                self.live.setChecked(False)
            self._show_bundle(self.timeline[value])
        self._update_step_label()

    @Slot(bool)
    def _on_live_toggled(self, on: bool) -> None:
        if on and len(self.timeline):
            self.slider.setValue(len(self.timeline) - 1)
            self._show_bundle(self.timeline[len(self.timeline) - 1])

    @Slot()
    def _on_play_clicked(self) -> None:
        if self._player.isActive():
            self._player.stop()
            self.play.setText("▶ replay")
            return
        self.live.setChecked(False)
        self.slider.setValue(0)
        self._show_bundle(self.timeline[0]) if len(self.timeline) else None
        self.play.setText("■ stop")
        self._player.start()

    @Slot()
    def _on_player_timeout(self) -> None:
        nxt = self.slider.value() + 1
        if nxt >= len(self.timeline):
            self._player.stop()
            self.play.setText("▶ replay")
            return
        self.slider.setValue(nxt)

    @Slot(object, object)
    def _on_training_run_started(self, model: Any, data: Any) -> None:
        if self.graph is None:
            return
        if self.batch is None or self._batch_source is not data:
            try:
                self.batch = ProbeBatch.from_dataset(data, n=PROBE_IMAGES)
            except CnnvizError as exc:
                self.activation_view.set_message(f"Cannot pick probe images: {exc}")
                return
            self._batch_source = data
            self.activation_view.class_names = self.batch.classes
            self.cam_view.set_classes(self.batch.classes)
        self._prober = None
        self.timeline.clear()
        self._update_slider()
        self.live.setChecked(True)
        self.observer = ProbeObserver(
            self.graph,
            self.batch,
            self.analysis,
            layer=self.layer,
            every_n_steps=CAPTURE_EVERY_N_STEPS,
            data=data,
            min_interval_s=CAPTURE_MIN_INTERVAL_S,
        )

    @Slot(object)
    def _on_training_probe(self, result: Any) -> None:
        if not isinstance(result, ProbeBundle):
            return
        self._shown_step = result.step
        if result.activations is not None:
            self.timeline.add(result)
            self._update_slider()
            if self.live.isChecked():
                self._show_bundle(result)
        if result.receptive_field is not None:
            self.rf_side.set_result(result.receptive_field)
            self.rf_view.set_result(result.receptive_field)
        if result.cam is not None:
            self.cam_view.set_result(result.cam)
        if result.confusion is not None:
            self.errors_view.set_result(result.confusion)

    @Slot(str)
    def _on_training_run_finished(self, _message: str) -> None:
        # Keep the observer's captures; probe the trained model directly from now on.
        self.observer = None
        self._prober = None
        if self.live.isChecked():
            self._request_refresh()

    @Slot(object)
    def _on_training_model_built(self, _model: Any) -> None:
        self._prober = None
        self._shown_step = 0
        self.timeline.clear()
        self._update_slider()
        if not self._building:  # else the probe that asked for the model goes on by itself
            self._request_refresh()
