"""Time an edit of a ResNet-50-size graph plus the re-analysis and re-layout it triggers.

Run: ``.venv/bin/python benchmarks/editing.py [--runs N] [--size original|teaching]``. The graph
is the zoo's ResNet-50 (176 nodes at either size). Each run does, through
:class:`~cnnviz.core.edit.EditSession`, a mix of the edits a person makes (change a kernel
size, insert a conv-BN-ReLU block, wrap a pair of nodes in a residual connection, change the
number of classes, undo) and times every one of them. The last line is one JSON object:

* ``edit_ms``: median time of an edit including the full re-analysis the session does
  (shapes, parameters, MACs, receptive fields, formulas) and the listeners;
* ``analyse_ms``: the baseline, a plain ``analyse(graph)`` from scratch on the same graph;
* ``edit_over_analyse``: their ratio (the edit's own bookkeeping is the part above 1);
* ``undo_ms``: median undo (state swap plus re-analysis);
* ``layout_collapsed_ms`` / ``layout_expanded_ms``: ``layout.layout`` of the edited graph as
  the view starts (groups collapsed to depth 1) and fully expanded;
* ``core_ms``: ``edit_ms + layout_collapsed_ms``, the core's share of "the view is updated";
* ``core_expanded_ms``: the same with the fully expanded layout.

Goal (issue "Editing"): edit + re-analysis + view update within 50 ms for a ResNet-50-size
graph, so the core should stay within about 25 ms (``core_ms``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--size", choices=("teaching", "original"), default="original")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(1)
    from cnnviz.core import layout
    from cnnviz.core.analysis import analyse
    from cnnviz.core.edit import EditSession
    from cnnviz.core.sources import load_source

    base = load_source("resnet50", size=args.size)
    analyse(base)  # warm caches and imports
    layout.layout(base)

    edits, undos, baseline, lay_c, lay_e = [], [], [], [], []
    nodes = len(base)
    for _ in range(args.runs):
        graph = base.copy()
        t = time.perf_counter()
        analyse(graph)
        baseline.append(time.perf_counter() - t)
        session = EditSession(graph)
        calls = [
            lambda s: s.set_params("layer2.0.conv2", kernel_size=5, padding=2),
            lambda s: s.insert("conv_bn_relu", "layer3.0.relu_2"),
            lambda s: s.wrap_residual(["layer4.2.conv1", "layer4.2.bn1"]),
            lambda s: s.set_num_classes(100),
            lambda s: s.delete("layer1.1.relu"),
            lambda s: s.replace("layer1.0.relu", "gelu"),
        ]
        for call in calls:
            t = time.perf_counter()
            result = call(session)
            edits.append(time.perf_counter() - t)
            assert result.ok, result.message
        collapsed = layout.collapse_to_depth(session.graph, 1)
        t = time.perf_counter()
        layout.layout(session.graph, collapsed, analysis=session.analysis)
        lay_c.append(time.perf_counter() - t)
        t = time.perf_counter()
        layout.layout(session.graph, analysis=session.analysis)
        lay_e.append(time.perf_counter() - t)
        while session.can_undo:
            t = time.perf_counter()
            session.undo()
            undos.append(time.perf_counter() - t)
        assert session.graph == base

    med = statistics.median
    edit_ms = med(edits) * 1e3
    analyse_ms = med(baseline) * 1e3
    figures = {
        "model": f"resnet50 ({args.size})",
        "nodes": nodes,
        "runs": args.runs,
        "edits_timed": len(edits),
        "edit_ms": round(edit_ms, 2),
        "edit_max_ms": round(max(edits) * 1e3, 2),
        "analyse_ms": round(analyse_ms, 2),
        "edit_over_analyse": round(edit_ms / analyse_ms, 2),
        "undo_ms": round(med(undos) * 1e3, 2),
        "layout_collapsed_ms": round(med(lay_c) * 1e3, 2),
        "layout_expanded_ms": round(med(lay_e) * 1e3, 2),
        "core_ms": round(edit_ms + med(lay_c) * 1e3, 2),
        "core_expanded_ms": round(edit_ms + med(lay_e) * 1e3, 2),
        "goal_core_ms": 25,
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
