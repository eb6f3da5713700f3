"""Time laying out DenseNet-201 (about 700 nodes), fully expanded and collapsed.

Run: ``.venv/bin/python benchmarks/layout.py [--runs N]``. The graph is traced once from a
meta-device model (not timed); each figure is the median over the runs. The last line is one
JSON object:

* ``densenet201_nodes``: nodes of the traced graph;
* ``layout_s``: ``layout(graph)`` with every group open (712 boxes, about 2,500 edges, most of
  them DenseNet's long dense connections);
* ``collapsed_layout_s``: ``layout(graph, collapse_to_depth(graph, 1))``, the dense blocks' layers
  shown as blocks;
* ``depth2_layout_s``: ``collapse_to_depth(graph, 2)``: dense layers open, their insides closed;
* ``layout_with_shapes_s``: fully expanded with an analysis passed, so that edges carry shapes
  (the analysis itself is not timed; see ``benchmarks/analysis.py``);
* ``items``, ``edges``, ``frames``, ``width``, ``height``: size of the fully expanded drawing.

Goal (issue "Graph view"): the issue's budget for opening densenet201 fully expanded, from import
to a built scene, is 0.5 s; the layout's share is at most 0.15 s.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    from cnnviz.core import analysis, trace
    from cnnviz.core.layout import collapse_to_depth, layout

    model = trace.build_torchvision("densenet201", meta=True).eval()
    graph = trace.from_module(model, (3, 224, 224), name="densenet201")
    result = analysis.analyse(graph)
    one, two = collapse_to_depth(graph, 1), collapse_to_depth(graph, 2)

    def timed(fn) -> float:
        times = []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return round(statistics.median(times), 4)

    full = layout(graph)
    figures = {
        "densenet201_nodes": len(graph),
        "runs": args.runs,
        "layout_s": timed(lambda: layout(graph)),
        "collapsed_layout_s": timed(lambda: layout(graph, one)),
        "depth2_layout_s": timed(lambda: layout(graph, two)),
        "layout_with_shapes_s": timed(lambda: layout(graph, analysis=result)),
        "items": len(full.items),
        "edges": len(full.edges),
        "frames": len(full.frames),
        "width": round(full.width),
        "height": round(full.height),
    }
    for key, value in figures.items():
        print(f"{key:>22}: {value}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
