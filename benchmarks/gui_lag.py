"""The window's event-loop lag while it trains, and the time from the Train click to the curves.

Run: ``QT_QPA_PLATFORM=offscreen .venv/bin/python benchmarks/gui_lag.py`` (about a minute; under
Xvfb without the variable to draw on a real X server). It opens the real
:class:`~cnnviz.ui.main_window.MainWindow` (LeNet-5, teaching size), clicks the training panel's
Start button with ``QTest`` and keeps a ``QTimer`` firing every 5 ms in the GUI thread; each
tick records how late it came (its lateness past the 5 ms it asked for). Figures:

- ``click_to_first_point_s``: from the click to the first training point drawn by the curves
  (data set generated in the worker, first optimizer step, signal, redraw); goal: < 3 s;
- ``<model>_lag_p50_ms``, ``_p99_ms``, ``_max_ms``: lateness while training (from the first
  drawn point on), for LeNet-5 on shapes and then the teaching ResNet-18 on the colour shapes;
  goal: p99 <= 16 ms and max <= 50 ms;
- ``lenet_lag_loading_max_ms``: the largest lateness between the click and the first point
  (the data set is drawn in the worker thread meanwhile).

The last line is one JSON object. The machine may be shared: lateness includes the time the
operating system gave the CPU to other processes, so a busy machine inflates the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

INTERVAL_MS = 5


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="training time per model")
    parser.add_argument("--models", default="lenet5,resnet18")
    args = parser.parse_args()

    os.environ.setdefault("CNNVIZ_DATA_DIR", str(Path("/tmp/cnnviz-bench-data")))
    from PySide6.QtCore import QElapsedTimer, Qt, QTimer
    from PySide6.QtTest import QTest
    from PySide6.QtWidgets import QApplication

    from cnnviz.ui.app import make_application
    from cnnviz.ui.main_window import MainWindow

    app = make_application([sys.argv[0]])
    window = MainWindow(model="lenet5")
    window.show()
    clock = QElapsedTimer()
    clock.start()
    state: dict = {"last": None, "lateness": [], "phase": None, "first_point": None}

    def tick() -> None:
        now = clock.nsecsElapsed() / 1e6
        if state["last"] is not None and state["phase"] is not None:
            state["lateness"].append((state["phase"], max(0.0, now - state["last"] - INTERVAL_MS)))
        state["last"] = now
        panel = getattr(window, "training_panel", None)
        if (
            state["first_point"] is None
            and state["phase"] is not None
            and panel is not None
            and panel.curves.drawn_points("train_loss") > 0
        ):
            state["first_point"] = time.perf_counter()

    timer = QTimer()
    timer.setTimerType(Qt.TimerType.PreciseTimer)
    timer.timeout.connect(tick)
    timer.start(INTERVAL_MS)

    def wait_until(condition, timeout_s: float) -> None:
        end = time.perf_counter() + timeout_s
        while not condition():
            if time.perf_counter() > end:
                raise TimeoutError("benchmark step timed out")
            app.processEvents()
            time.sleep(0.001)

    def run_events(seconds: float) -> None:
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            app.processEvents()
            time.sleep(0.0005)

    wait_until(lambda: window.core_ready and window.graph is not None, 120)
    panel = window.training_panel
    panel.epochs_edit.setText("100")
    # Let the background import of the optimizer's modules finish, as it does while a lecturer
    # looks at the model before pressing Train.
    if panel._prewarm is not None:
        wait_until(lambda: not panel._prewarm.isRunning(), 60)
    run_events(0.5)
    result: dict[str, float] = {"cpu_count": os.cpu_count() or 0}
    for name in args.models.split(","):
        if window.graph.name != name:
            assert window.load_model(name, "teaching")
        run_events(0.5)
        key = "lenet" if name == "lenet5" else name
        state.update(lateness=[], first_point=None, phase="loading")
        redraws = panel.curves.redraw_count
        click = time.perf_counter()
        QTest.mouseClick(panel.start_button, Qt.MouseButton.LeftButton)
        wait_until(lambda: state["first_point"] is not None, 120)
        first = state["first_point"] - click
        state["phase"] = "training"
        run_events(args.seconds)
        steps = panel.reports[-1].global_step if panel.reports else 0
        state["phase"] = None
        panel.stop()
        wait_until(lambda: not panel.is_training(), 60)
        loading = [v for phase, v in state["lateness"] if phase == "loading"]
        training = np.array([v for phase, v in state["lateness"] if phase == "training"])
        result[f"{key}_click_to_first_point_s"] = round(first, 3)
        result[f"{key}_lag_p50_ms"] = round(float(np.percentile(training, 50)), 2)
        result[f"{key}_lag_p99_ms"] = round(float(np.percentile(training, 99)), 2)
        result[f"{key}_lag_max_ms"] = round(float(training.max()), 2)
        result[f"{key}_lag_loading_max_ms"] = round(max(loading, default=0.0), 2)
        result[f"{key}_ticks"] = int(training.size)
        result[f"{key}_steps"] = steps
        result[f"{key}_curve_redraws_per_s"] = round(
            (panel.curves.redraw_count - redraws) / (time.perf_counter() - click), 1
        )
        print(
            f"{name}: first point {first:.2f} s after the click; lag while training "
            f"p50 {result[f'{key}_lag_p50_ms']} ms, p99 {result[f'{key}_lag_p99_ms']} ms, "
            f"max {result[f'{key}_lag_max_ms']} ms over {training.size} ticks, {steps} steps",
            flush=True,
        )
    result["click_to_first_point_s"] = result.get("lenet_click_to_first_point_s", float("nan"))
    window.close()
    QApplication.processEvents()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
