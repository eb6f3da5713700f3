"""Time the graph view: opening DenseNet-201 fully expanded, and redrawing a 1,000-node scene.

Run: ``QT_QPA_PLATFORM=offscreen .venv/bin/python benchmarks/graph.py [--runs N]``. The last
line is one JSON object:

* ``densenet201_open_s``: from the built ``nn.Module`` (meta device) to a finished view:
  ``trace_s`` (torch.fx import) + ``analyse_s`` + ``set_model_s`` (the layout and every scene
  item, fully expanded: ``GraphView.set_model(graph, analysis, depth=None)``); goal <= 0.5 s.
  ``scene_build_s`` is the scene alone (layout included), ``layout_s`` the layout alone;
  ``build_model_s`` (torchvision constructing the module) is not ours and is reported aside.
* ``redraw_fit_ms``: a full repaint of a 1600x1000 view showing the whole 1,000-node scene
  (cards drawn as plain rectangles at that scale: level of detail); goal <= 16 ms.
  ``redraw_100_ms``: the same at 100 % (full cards, text and shape labels on screen);
  ``redraw_title_ms``: at 40 % (cards with their names only).
* ``baseline_*_ms``: the same repaints of a plain ``QGraphicsScene`` holding, at the same
  places, one ``QGraphicsRectItem`` and one ``QGraphicsSimpleTextItem`` per card and one
  ``QGraphicsPathItem`` per edge (what Qt does with no care taken); ``*_ratio``: ours / it.
* ``export_png_s``, ``export_svg_s``: writing the whole 1,000-node drawing to a file.

The app freezes the objects alive once torch has loaded (``gc.freeze()``), so that a full
garbage collection (0.3-0.4 s with torch's heap) cannot land in the middle of opening a model;
the benchmark does the same after its imports.

Every figure is a median over the runs (repaints: over ``--repaints`` repaints).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def synthetic_graph(blocks: int = 143):
    """A ResNet-like chain of ``blocks`` residual blocks, 7 nodes each (1,002 nodes at 143)."""
    from cnnviz.core.graph import ArchGraph

    g = ArchGraph("residual1000")
    g.add_input("input", (64, 56, 56))
    prev = "input"
    conv = dict(in_channels=64, out_channels=64, kernel_size=3, padding=1)
    for b in range(blocks):
        grp = f"stage{b // 20 + 1}.block{b % 20}"
        p = f"{grp}."
        g.add(p + "conv1", "conv2d", [prev], grp, **conv)
        g.add(p + "bn1", "batch_norm2d", [p + "conv1"], grp, num_features=64)
        g.add(p + "relu1", "relu", [p + "bn1"], grp)
        g.add(p + "conv2", "conv2d", [p + "relu1"], grp, **conv)
        g.add(p + "bn2", "batch_norm2d", [p + "conv2"], grp, num_features=64)
        g.add(p + "add", "add", [p + "bn2", prev], grp)
        g.add(p + "relu2", "relu", [p + "add"], grp)
        prev = p + "relu2"
    g.add("pool", "global_avg_pool2d", [prev])
    return g


def baseline_scene(lay):
    """What the same drawing costs with plain Qt items."""
    from PySide6.QtCore import QPointF
    from PySide6.QtGui import QBrush, QColor, QPainterPath, QPen
    from PySide6.QtWidgets import QGraphicsScene

    scene = QGraphicsScene()
    brush, pen = QBrush(QColor("#d9e6f5")), QPen(QColor("#3f6e9e"))
    for it in lay.items:
        r = scene.addRect(it.x, it.y, it.width, it.height, pen, brush)
        t = scene.addSimpleText(it.label)
        t.setPos(it.x + 8, it.y + 4)
        r.setZValue(2)
        t.setZValue(3)
    edge_pen = QPen(QColor("#7a8391"), 1.25)
    for e in lay.edges:
        path = QPainterPath(QPointF(*e.points[0]))
        for x, y in e.points[1:]:
            path.lineTo(x, y)
        scene.addPath(path, edge_pen)
    scene.setSceneRect(0, 0, lay.width, lay.height)
    return scene


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--repaints", type=int, default=30)
    args = parser.parse_args()

    from PySide6.QtCore import QPointF
    from PySide6.QtWidgets import QApplication, QGraphicsView

    from cnnviz.core import analysis, trace
    from cnnviz.core.layout import expand_all, layout
    from cnnviz.ui.graph_items import LAYOUT_GAPS, GraphScene
    from cnnviz.ui.graph_view import GraphView

    app = QApplication.instance() or QApplication([])
    med = statistics.median
    gc.freeze()  # as the app does once torch is loaded (MainWindow._build_graph_view)

    # ------------------------------------------------------------- DenseNet-201, opened
    t0 = time.perf_counter()
    model = trace.build_torchvision("densenet201", meta=True).eval()
    build_model_s = time.perf_counter() - t0
    tr, an, sm, sb, lt = [], [], [], [], []
    view = GraphView()
    view.resize(1600, 1000)
    view.show()
    app.processEvents()
    nodes = items = edges = 0
    for _ in range(args.runs):
        t0 = time.perf_counter()
        graph = trace.from_module(model, (3, 224, 224), name="densenet201")
        t1 = time.perf_counter()
        result = analysis.analyse(graph)
        t2 = time.perf_counter()
        view.set_model(graph, result, depth=None)
        t3 = time.perf_counter()
        tr.append(t1 - t0)
        an.append(t2 - t1)
        sm.append(t3 - t2)
        scene = GraphScene()
        t4 = time.perf_counter()
        scene.build(graph, result, view.state)
        sb.append(time.perf_counter() - t4)
        t5 = time.perf_counter()
        layout(graph, expand_all(), analysis=result, **LAYOUT_GAPS)
        lt.append(time.perf_counter() - t5)
        nodes, items, edges = len(graph), len(scene.cards), len(scene.layout.edges)
        app.processEvents()
    open_s = med(tr) + med(an) + med(sm)

    # ------------------------------------------------------------- 1,000-node redraw
    g1000 = synthetic_graph()
    r1000 = analysis.analyse(g1000)
    assert r1000.ok, r1000.errors[:3]
    view.set_model(g1000, r1000, depth=None)
    ours_scene = view.graph_scene
    plain_scene = baseline_scene(ours_scene.layout)  # the view does not keep it alive
    base = QGraphicsView(plain_scene)
    base.setRenderHints(view.renderHints())
    base.resize(view.size())
    base.show()
    app.processEvents()

    def repaint_ms(v) -> float:
        v.viewport().repaint()  # warm caches (static text, glyphs)
        times = []
        for _ in range(args.repaints):
            t = time.perf_counter()
            v.viewport().repaint()
            times.append(time.perf_counter() - t)
        return round(med(times) * 1000, 3)

    def place(scale: float | None) -> None:
        rect = ours_scene.sceneRect()
        if scale is None:
            view.fit()
        else:
            view.set_zoom(scale)
            view.centerOn(QPointF(rect.center().x(), rect.top() + 900))
        base.setTransform(view.transform())
        base.centerOn(view.mapToScene(view.viewport().rect().center()))
        app.processEvents()

    figures_redraw = {}
    for key, scale in (("fit", None), ("100", 1.0), ("title", 0.4)):
        place(scale)
        ours = repaint_ms(view)
        plain = repaint_ms(base)
        figures_redraw[f"redraw_{key}_ms"] = ours
        figures_redraw[f"baseline_{key}_ms"] = plain
        figures_redraw[f"redraw_{key}_ratio"] = round(ours / plain, 3) if plain else None
    visible_at_fit = len(ours_scene.cards)

    with tempfile.TemporaryDirectory() as tmp:
        png, svg = [], []
        for _ in range(args.runs):
            t = time.perf_counter()
            view.export_image(str(Path(tmp) / "g.png"))
            png.append(time.perf_counter() - t)
            t = time.perf_counter()
            view.export_image(str(Path(tmp) / "g.svg"))
            svg.append(time.perf_counter() - t)

    figures = {
        "densenet201_nodes": nodes,
        "densenet201_items": items,
        "densenet201_edges": edges,
        "runs": args.runs,
        "build_model_s": round(build_model_s, 4),
        "trace_s": round(med(tr), 4),
        "analyse_s": round(med(an), 4),
        "layout_s": round(med(lt), 4),
        "scene_build_s": round(med(sb), 4),
        "set_model_s": round(med(sm), 4),
        "densenet201_open_s": round(open_s, 4),
        "open_goal_s": 0.5,
        "open_goal_met": open_s <= 0.5,
        "scene_nodes": len(g1000),
        "scene_cards": visible_at_fit,
        "scene_edges": len(ours_scene.layout.edges),
        **figures_redraw,
        "redraw_goal_ms": 16.0,
        "redraw_goal_met": max(figures_redraw[f"redraw_{k}_ms"] for k in ("fit", "100", "title"))
        <= 16.0,
        "export_png_s": round(med(png), 4),
        "export_svg_s": round(med(svg), 4),
    }
    for key, value in figures.items():
        print(f"{key:>22}: {value}")
    view.close()
    base.close()
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
