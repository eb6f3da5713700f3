"""Time "after every edit the view is updated" for ResNet-50 in the graph view.

Run: ``QT_QPA_PLATFORM=offscreen .venv/bin/python benchmarks/editing_view.py [--runs N]``.

A 1400x900 :class:`~cnnviz.ui.graph_view.GraphView` shows the zoo's ResNet-50 as the app opens
it (groups collapsed by size). Each run makes three edits through
:class:`~cnnviz.core.edit.EditSession` (a kernel size, an inserted conv-BN-ReLU block, an undo)
and, for each, times the whole path a user waits for: the edit with its re-analysis, then
``GraphView.refresh(graph, analysis)`` (layout and scene rebuilt, open groups and viewport
kept), then one repaint of the viewport (``repaint()`` paints synchronously). The last line is
one JSON object:

* ``edit_to_paint_ms``: median of edit + refresh + paint; goal <= 50 ms (issue "Editing");
* ``edit_ms``, ``refresh_ms``, ``paint_ms``: the three parts (medians);
* ``baseline_set_model_ms``: a from-scratch ``GraphView.set_model`` of the same graph plus a
  repaint (what redrawing without keeping state costs); ``refresh_over_set_model``: the
  ratio refresh + paint / that baseline;
* ``edit_to_paint_max_ms``: the slowest of all timed edits.

As in the app, objects alive after the imports are frozen (``gc.freeze()``).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--size", choices=("teaching", "original"), default="original")
    args = parser.parse_args()

    import torch
    from PySide6.QtWidgets import QApplication

    torch.set_num_threads(1)
    app = QApplication.instance() or QApplication([])
    from cnnviz.core.analysis import analyse
    from cnnviz.core.edit import EditSession
    from cnnviz.core.sources import load_source
    from cnnviz.ui.graph_view import GraphView

    base = load_source("resnet50", size=args.size)
    view = GraphView()
    view.resize(1400, 900)
    view.show()
    app.processEvents()
    view.set_model(base.copy(), analyse(base))  # warm imports and caches
    app.processEvents()
    gc.collect()
    gc.freeze()

    def paint() -> float:
        t = time.perf_counter()
        view.viewport().repaint()
        return time.perf_counter() - t

    edits, refreshes, paints, totals, baseline = [], [], [], [], []
    for _ in range(args.runs):
        graph = base.copy()
        analysis = analyse(graph)
        t = time.perf_counter()
        view.set_model(graph, analysis)
        baseline.append(time.perf_counter() - t + paint())
        app.processEvents()
        session = EditSession(graph, analysis)
        calls = [
            lambda s: s.set_params("layer2.0.conv2", kernel_size=5, padding=2),
            lambda s: s.insert("conv_bn_relu", "layer3.0.relu_2"),
            lambda s: s.undo(),
        ]
        for call in calls:
            t0 = time.perf_counter()
            result = call(session)
            t1 = time.perf_counter()
            assert result.ok, result.message
            view.refresh(session.graph, session.analysis)
            t2 = time.perf_counter()
            p = paint()
            edits.append(t1 - t0)
            refreshes.append(t2 - t1)
            paints.append(p)
            totals.append(t2 - t0 + p)
            app.processEvents()

    med = statistics.median
    total_ms = med(totals) * 1e3
    base_ms = med(baseline) * 1e3
    figures = {
        "model": f"resnet50 ({args.size})",
        "nodes": len(base),
        "runs": args.runs,
        "edits_timed": len(totals),
        "edit_to_paint_ms": round(total_ms, 2),
        "edit_to_paint_max_ms": round(max(totals) * 1e3, 2),
        "edit_ms": round(med(edits) * 1e3, 2),
        "refresh_ms": round(med(refreshes) * 1e3, 2),
        "paint_ms": round(med(paints) * 1e3, 2),
        "baseline_set_model_ms": round(base_ms, 2),
        "refresh_over_set_model": round((med(refreshes) + med(paints)) * 1e3 / base_ms, 2),
        "goal_ms": 50,
        "meets_goal": total_ms <= 50,
    }
    view.close()
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
