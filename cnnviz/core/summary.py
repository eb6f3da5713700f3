"""Text, JSON and CSV summaries of an analysed graph (``cnnviz summary``).

The JSON layout is a contract other tools read::

    {"model": str, "input_shape": [C, H, W],
     "totals": {"params": int, "trainable_params": int, "macs": int},
     "layers": [{"name": str, "kind": str, "output_shape": [...], "params": int, "macs": int,
                 "rf": {"size": [h, w] | null, "jump": [h, w] | null,
                        "padding": [h, w] | null, "global": bool}}],
     "groups": [same fields, one per module container]}

``name`` is the qualified module name for module nodes and the node name otherwise; shapes leave
out the batch dimension; ``params`` counts trainable and frozen parameters. JSON and CSV always
list every layer; ``depth`` only folds the table.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from typing import Any

from cnnviz.core.analysis import Analysis, GroupAnalysis, NodeAnalysis, analyse, format_count
from cnnviz.core.graph import ArchGraph
from cnnviz.core.ops import RF, MultiShape
from cnnviz.errors import CnnvizError

FORMATS = ("table", "json", "csv")
MAX_TABLE_ROWS = 60
"""``cnnviz summary`` folds nested groups until the table has at most this many layer rows."""


def _shape_json(shape: Any) -> Any:
    if shape is None:
        return None
    if isinstance(shape, MultiShape):
        return [list(s) for s in shape]
    return list(shape)


def _num_json(v: Any) -> Any:
    return int(v) if float(v).is_integer() else float(v)


def _rf_json(rf: RF | None) -> dict[str, Any]:
    if rf is None or not rf.is_local:
        return {
            "size": None,
            "jump": None,
            "padding": None,
            "global": bool(rf is not None and rf.global_),
        }
    return {
        "size": [_num_json(v) for v in rf.size],
        "jump": [_num_json(v) for v in rf.jump],
        "padding": [_num_json(v) for v in rf.padding],
        "global": bool(rf.global_),
    }


def _layer_json(r: NodeAnalysis | GroupAnalysis, kind: str) -> dict[str, Any]:
    return {
        "name": r.name,
        "kind": kind,
        "output_shape": _shape_json(r.output_shape),
        "params": int(r.total_params),
        "macs": int(r.macs),
        "rf": _rf_json(r.rf),
    }


def to_dict(graph: ArchGraph, analysis: Analysis) -> dict[str, Any]:
    """The summary as the JSON contract's dict."""
    return {
        "model": graph.name,
        "input_shape": list(analysis.input_shape) if analysis.input_shape else None,
        "totals": {
            "params": int(analysis.total_params),
            "trainable_params": int(analysis.params),
            "macs": int(analysis.macs),
        },
        "layers": [_layer_json(analysis.nodes[n], analysis.nodes[n].kind) for n in analysis.order],
        "groups": [_layer_json(g, "group") for g in analysis.groups.values()],
    }


def _rf_text(rf: RF | None) -> str:
    if rf is None:
        return "-"
    if not rf.is_local:
        return "global" if rf.global_ else "-"

    def axis(vals: Sequence[float]) -> str:
        texts = [f"{v:g}" for v in vals]
        return texts[0] if len(set(texts)) == 1 else "x".join(texts)

    text = f"{axis(rf.size)}/{axis(rf.jump)}"
    return text + " (global)" if rf.global_ else text


def _shape_text(shape: Any) -> str:
    if shape is None:
        return "?"
    if isinstance(shape, MultiShape):
        return " ".join(_shape_text(s) for s in shape)
    return "(" + ", ".join(str(s) for s in shape) + ")"


def _bytes_text(n: float) -> str:
    """``0.57 MB`` / ``12.0 KB`` (binary units, as torchinfo)."""
    if n >= 2**30:
        return f"{n / 2**30:.2f} GB"
    if n >= 2**20:
        return f"{n / 2**20:.2f} MB"
    return f"{n / 2**10:.1f} KB"


def _count_text(n: int) -> str:
    return f"{n:,}" if n else "-"


def _macs_text(n: int) -> str:
    return format_count(n) if n else "-"


def _table_rows(
    graph: ArchGraph, a: Analysis, depth: int | None
) -> list[tuple[str, str, str, str, str, str]]:
    """The layer rows of the table: groups as they open, nodes down to ``depth``."""
    rows: list[tuple[str, str, str, str, str, str]] = []
    shown_groups: set[str] = set()
    collapsed: set[str] = set()

    def visible(d: int) -> bool:
        return depth is None or d <= depth

    for name in a.order:
        r = a.nodes[name]
        group = r.group
        parts = group.split(".") if group else []
        hidden = False
        for k in range(1, len(parts) + 1):
            g = ".".join(parts[:k])
            if g in collapsed:
                hidden = True
                break
            if g not in shown_groups:
                shown_groups.add(g)
                if not visible(k):
                    hidden = True
                    break
                ga = a.groups[g]
                indent = "  " * (k - 1)
                rows.append(
                    (
                        f"{indent}{parts[k - 1]}",
                        "group, training only"
                        if all(graph[n].training_only for n in graph.nodes_in_group(g))
                        else "group",
                        _shape_text(ga.output_shape),
                        _count_text(ga.total_params),
                        _macs_text(ga.macs),
                        _rf_text(ga.rf),
                    )
                )
                if depth is not None and k == depth:
                    collapsed.add(g)
                    hidden = True
                    break
        if hidden or not visible(len(parts) + 1):
            continue
        short = name[len(group) + 1 :] if group and name.startswith(group + ".") else name
        kind = r.kind
        if r.kind == "opaque":
            node = graph[name]
            what = str(node.params.get("type") or node.params.get("function") or "")
            kind = f"opaque {what.rpartition('.')[2]}".rstrip()
        if graph[name].training_only:
            kind += ", training only"
        rows.append(
            (
                "  " * len(parts) + short + (" !" if r.error else ""),
                kind,
                _shape_text(r.output_shape),
                _count_text(r.total_params),
                _macs_text(r.macs),
                _rf_text(r.rf),
            )
        )
    return rows


def _table(graph: ArchGraph, a: Analysis, depth: int | None) -> str:
    rows = _table_rows(graph, a, depth)
    header = ("Layer", "Kind", "Output shape", "Params", "MACs", "RF size/jump")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    right = {3, 4}

    def fmt(row: Sequence[str]) -> str:
        cells = [
            row[i].rjust(widths[i]) if i in right else row[i].ljust(widths[i])
            for i in range(len(row))
        ]
        return "  ".join(cells).rstrip()

    rule = "=" * len(fmt(header))
    lines = [f"{graph.name}", rule, fmt(header), "-" * len(rule)]
    lines += [fmt(r) for r in rows]
    lines.append(rule)
    in_shape = a.input_shape or ()
    in_bytes = 4
    for s in in_shape:
        in_bytes *= s
    lines += [
        f"Total params: {a.total_params:,}",
        f"Trainable params: {a.params:,}",
        f"Non-trainable params: {a.frozen_params:,}",
        f"Total MACs: {format_count(a.macs, 'MACs')} ({a.macs:,})",
        f"Element-wise ops: {format_count(a.ops)} ({a.ops:,})",
        rule,
        f"Input size: {_shape_text(tuple(in_shape))} = {_bytes_text(in_bytes)} (float32)",
        f"Params size: {_bytes_text((a.total_params + a.buffers) * 4)} (float32, with buffers)",
        f"Estimated activation memory: {_bytes_text(a.memory_bytes)} "
        "(all layer outputs, one sample, float32)",
        rule,
    ]
    if a.errors:
        lines.append("Problems:")
        for node, message in a.errors:
            fix = a.nodes[node].fix
            lines.append(f"  {node}: {message}" + (f"; fix: {fix}" if fix else ""))
    extra = [n for n in graph if n.training_only]
    if extra:
        params = sum(a.nodes[n.name].total_params for n in extra)
        lines.append(
            f"Training only: {len(extra)} layers (auxiliary classifiers), {params:,} params, "
            "counted in the params above; their MACs are not in the total (inference)."
        )
    for note in graph.notes:
        lines.append(f"Note: {note}")
    return "\n".join(lines)


def _csv(graph: ArchGraph, a: Analysis) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(
        [
            "name",
            "kind",
            "output_shape",
            "params",
            "macs",
            "rf_size_h",
            "rf_size_w",
            "rf_jump_h",
            "rf_jump_w",
            "rf_padding_h",
            "rf_padding_w",
            "rf_global",
        ]
    )
    for layer in to_dict(graph, a)["layers"]:
        rf = layer["rf"]

        def pair(v: Any) -> list[Any]:
            if v is None:
                return ["", ""]
            return [v[0], v[1] if len(v) > 1 else ""]

        shape = layer["output_shape"]
        if shape is None:
            shape_txt = ""
        elif shape and isinstance(shape[0], list):
            shape_txt = " ".join("x".join(map(str, s)) for s in shape)
        else:
            shape_txt = "x".join(map(str, shape))
        w.writerow(
            [
                layer["name"],
                layer["kind"],
                shape_txt,
                layer["params"],
                layer["macs"],
                *pair(rf["size"]),
                *pair(rf["jump"]),
                *pair(rf["padding"]),
                str(rf["global"]).lower(),
            ]
        )
    return buf.getvalue()


def render(
    graph: ArchGraph,
    analysis: Analysis | None = None,
    fmt: str = "table",
    depth: int | None = None,
) -> str:
    """The summary as text.

    Args:
        graph: The graph.
        analysis: Its analysis (computed when None).
        fmt: ``table`` (for people), ``json`` (the contract above) or ``csv`` (one row per layer).
        depth: Table only: fold groups nested deeper than this into one row of totals.

    Raises:
        CnnvizError: Unknown format or a negative depth.
    """
    if fmt not in FORMATS:
        raise CnnvizError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if depth is not None and depth < 1:
        raise CnnvizError(f"depth must be 1 or more, got {depth}")
    a = analysis or analyse(graph)
    if fmt == "json":
        return json.dumps(to_dict(graph, a), indent=1)
    if fmt == "csv":
        return _csv(graph, a)
    return _table(graph, a, depth)


def main(
    source: str,
    input_shape: Sequence[int] | None = None,
    depth: int | None = None,
    fmt: str = "table",
) -> str:
    """``cnnviz summary``: load ``source`` (see :func:`cnnviz.core.sources.load_source`),
    analyse it and render it.

    Raises:
        CnnvizError: For anything the user can fix (unknown source, bad shape, format).
    """
    from cnnviz.core.sources import load_source

    if fmt not in FORMATS:
        raise CnnvizError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    graph = load_source(source, tuple(input_shape) if input_shape else None)
    a = analyse(graph)
    if fmt == "table" and depth is None:
        depth = auto_depth(graph, a)
        if depth is not None:
            text = render(graph, a, fmt=fmt, depth=depth)
            return text + (
                f"\nGroups nested deeper than {depth} are folded; --depth N shows more levels."
            )
    return render(graph, a, fmt=fmt, depth=depth)


def auto_depth(graph: ArchGraph, analysis: Analysis, max_rows: int = MAX_TABLE_ROWS) -> int | None:
    """The deepest group level whose table keeps at most ``max_rows`` layer rows, or None
    when the full table fits (a screen, or a slide, rather than 200 lines for ResNet-50)."""
    levels = max((g.depth for g in analysis.groups.values()), default=0)
    for depth in range(levels, 0, -1):
        if len(_table_rows(graph, analysis, depth)) <= max_rows:
            return None if depth == levels else depth
    return 1
