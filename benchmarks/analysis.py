"""Time importing and analysing DenseNet-201 (about 700 nodes) at 224x224.

Run: ``.venv/bin/python benchmarks/analysis.py [--runs N]``. The model is built on the meta
device (no weights, no memory); timings start after the imports. The last line is one JSON
object:

* ``build_s``: torchvision builds the model on the meta device (not ours; for reference);
* ``trace_s``: ``from_module``: torch.fx trace, the meta-device run that measures shapes, and
  the conversion to an ArchGraph;
* ``fx_trace_s``: torch.fx's symbolic trace alone, the floor under ``trace_s``;
* ``analyse_s``: ``analyse(graph)``: shapes, counts, receptive fields and formulas of every node;
* ``total_s``: ``trace_s + analyse_s``;
* ``trace_over_fx``: ``trace_s / fx_trace_s``, the import's cost as a multiple of the bare
  torch.fx trace measured in the same run (steadier than seconds on a busy machine).

Every figure is the median over ``--runs`` runs; each run builds a fresh model and starts with
the registry's cache of checked parameter sets empty, as a first import would.

Goal (issue "The architecture core"): import and analyse, ``total_s``, at most 0.2 s after the
imports. ``analyse_s`` alone is what an edit costs in the app (an edit re-analyses the graph,
it does not re-trace the model).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()

    import torch.fx

    from cnnviz.core import analysis, ops, trace

    build, fx_trace, tr, an = [], [], [], []
    nodes = 0
    for _ in range(args.runs):
        ops._VALID.clear()
        t0 = time.perf_counter()
        model = trace.build_torchvision("densenet201", meta=True).eval()
        t1 = time.perf_counter()
        torch.fx.Tracer().trace(model)
        t2 = time.perf_counter()
        graph = trace.from_module(model, (3, 224, 224), name="densenet201")
        t3 = time.perf_counter()
        result = analysis.analyse(graph)
        t4 = time.perf_counter()
        assert result.ok, result.errors[:3]
        nodes = len(graph)
        build.append(t1 - t0)
        fx_trace.append(t2 - t1)
        tr.append(t3 - t2)
        an.append(t4 - t3)
    med = statistics.median
    figures = {
        "model": "densenet201",
        "nodes": nodes,
        "runs": args.runs,
        "build_s": round(med(build), 4),
        "fx_trace_s": round(med(fx_trace), 4),
        "trace_s": round(med(tr), 4),
        "analyse_s": round(med(an), 4),
        "total_s": round(med(tr) + med(an), 4),
        "trace_over_fx": round(med(tr) / med(fx_trace), 2),
        "goal_s": 0.2,
        "goal_covers": "total_s",
        "goal_met": med(tr) + med(an) <= 0.2,
    }
    print(
        f"densenet201: {nodes} nodes; trace {figures['trace_s']:.3f} s (torch.fx alone "
        f"{figures['fx_trace_s']:.3f} s), analyse {figures['analyse_s']:.3f} s"
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
