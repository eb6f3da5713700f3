"""Probe figures: selection-to-painted-grid latency, and what probes cost training.

1. ``select_ms``: ResNet-18 (teaching size, 3x32x32), a probe batch of 8 images. For each probed
   node, the time from ``ProbePanel.show_layer(name)`` (capture included: a forward pass as far
   as that node, statistics, colouring) to the activation grid painted (``repaint()``), with
   torch on one thread as in the GUI thread. Median and maximum over the nodes. Target: median
   within 50 ms. Outside training the panel keeps every node's output of the probe batch from
   one forward pass (16 MB here) until the weights change; ``select_cold_ms`` is a click right
   after the weights changed (a full forward pass, then the grid).
2. ``throughput_ratio``: LeNet-5 trained on shapes28 with a :class:`ProbeObserver` capturing the
   first convolution's activations and filters every 10 steps (as the GUI does), against the
   same training without it, in alternating slots of the same process (12 pairs, the order
   alternating); the median of the per-pair ratios of images per second. Target: at least
   0.98. ``observer_time_share`` is the share of the probed run's time spent inside the
   observer, the same cost measured directly (steadier on a busy machine).

Run: ``QT_QPA_PLATFORM=offscreen .venv/bin/python benchmarks/probes.py``. The last line is JSON.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def selection_latency() -> dict[str, float]:
    import torch
    from PySide6.QtWidgets import QApplication

    from cnnviz.core.analysis import analyse
    from cnnviz.core.build import build_module
    from cnnviz.core.data import load_dataset
    from cnnviz.core.sources import load_source
    from cnnviz.core.training import configure_main_thread
    from cnnviz.ui.probe_panel import ProbePanel

    app = QApplication.instance() or QApplication(sys.argv)
    configure_main_thread()
    torch.manual_seed(0)
    graph = load_source("resnet18", size="teaching")
    analysis = analyse(graph)
    model = build_module(graph)
    data = load_dataset("shapes32", train_size=400)
    panel = ProbePanel()
    panel.set_providers(lambda: model, lambda: data)
    panel.resize(1300, 360)
    panel.show()
    panel.set_model(graph, analysis)
    app.processEvents()
    names = [
        n
        for n in analysis.order
        if graph[n].kind != "input" and n != panel.layer and analysis[n].output_shape is not None
    ]
    times = []
    previous = panel.layer
    for name in names + names:  # the first pass warms up the kernels
        start = time.perf_counter()
        panel.show_layer(name)
        panel.activation_view.grid.repaint()
        times.append((time.perf_counter() - start) * 1000)
        panel.show_layer(previous)
        app.processEvents()
    measured = times[len(names) :]
    # Cold: the weights changed since the last probe (as after training), so the first click
    # pays a full forward pass of the probe batch.
    cold = []
    for name in names[::4]:
        with torch.no_grad():
            for p in model.parameters():
                p.add_(0.0)  # bumps the version counters: the cached outputs are stale
        start = time.perf_counter()
        panel.show_layer(name)
        panel.activation_view.grid.repaint()
        cold.append((time.perf_counter() - start) * 1000)
        panel.show_layer(previous)
        app.processEvents()
    panel.close()
    return {
        "select_ms_median": round(statistics.median(measured), 2),
        "select_ms_max": round(max(measured), 2),
        "select_cold_ms_median": round(statistics.median(cold), 2),
        "select_cold_ms_max": round(max(cold), 2),
        "select_layers": len(names),
        "probe_images": len(panel.batch),
    }


def throughput() -> dict[str, float]:
    import torch

    from cnnviz.core.build import build_module
    from cnnviz.core.data import load_dataset
    from cnnviz.core.probes import ProbeBatch, ProbeObserver
    from cnnviz.core.sources import load_source
    from cnnviz.core.training import TrainConfig, train

    graph = load_source("lenet5", size="teaching")
    data = load_dataset("shapes", train_size=6000)
    batch = ProbeBatch.from_dataset(data, n=8)
    config = TrainConfig(
        batch_size=64, epochs=1, max_steps_per_epoch=60, report_every_n_steps=10, seed=0
    )

    def run(with_probes: bool) -> tuple[float, float, int]:
        """Images per second of a whole run (validation included) and the observer's share."""
        torch.manual_seed(0)
        model = build_module(graph)
        observer = ProbeObserver(graph, batch, every_n_steps=10) if with_probes else None
        images = 0
        in_observer = 0.0
        start = time.perf_counter()
        for report in train(model, data, config):
            images = report.global_step * config.batch_size
            if observer is not None:
                t0 = time.perf_counter()
                observer(model, report)
                in_observer += time.perf_counter() - t0
        total = time.perf_counter() - start
        return images / total, in_observer / total, observer.captures if observer else 0

    run(False)  # warm-up
    ratios, shares = [], []
    plain_rates, probed_rates = [], []
    captures = 0
    # Twelve pairs, the order alternating (ABBA...) so that a drift in the machine's load
    # does not favour either side.
    for i in range(12):
        if i % 2 == 0:
            plain, _, _ = run(False)
            probed, share, captures = run(True)
        else:
            probed, share, captures = run(True)
            plain, _, _ = run(False)
        plain_rates.append(plain)
        probed_rates.append(probed)
        ratios.append(probed / plain)
        shares.append(share)
    return {
        "throughput_ratio": round(statistics.median(ratios), 4),
        "observer_time_share": round(statistics.median(shares), 4),
        "plain_images_per_s": round(statistics.median(plain_rates), 1),
        "probed_images_per_s": round(statistics.median(probed_rates), 1),
        "captures_per_run": captures,
    }


def main() -> None:
    figures = {}
    figures.update(selection_latency())
    figures.update(throughput())
    figures["select_target_ms"] = 50
    figures["throughput_target"] = 0.98
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
