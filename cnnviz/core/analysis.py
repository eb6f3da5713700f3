"""Shapes, parameters, MACs, element-wise ops, memory and receptive fields of an ArchGraph.

:func:`analyse` never raises for a bad graph: a node whose parameters or input shapes do not fit
gets an ``error`` (the message and, where one exists, a fix), nodes downstream of it get the
output shape None, and everything else is still computed. Results are frozen dataclasses so the
interface can read them from any thread.

Counting conventions (MACs, element-wise ops) and the receptive-field convention are those of
:mod:`cnnviz.core.ops`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from cnnviz.core import ops
from cnnviz.core.graph import ArchGraph, Node
from cnnviz.core.ops import RF, Counts, MultiShape, ParamError, ShapeError, prod, shape_str

BYTES_PER_VALUE = 4
"""Activation memory is estimated at float32."""

_EMPTY: Mapping[str, tuple[str, ...]] = MappingProxyType({})


@dataclass(frozen=True)
class NodeAnalysis:
    """Everything computed for one node.

    Attributes:
        name: Node name.
        kind: Operation kind.
        group: Group path of the node.
        family: Colour family of the kind.
        input_shapes: Shapes of the inputs (without batch), None where unknown.
        output_shape: Output shape (without batch); a MultiShape for several outputs; None when
            it cannot be computed (an error here or upstream).
        params: Trainable parameters.
        frozen_params: Parameters that are not trained.
        buffers: Stored non-parameter values (running statistics).
        macs: Multiply-accumulates for one sample.
        ops: Element-wise operations for one sample.
        memory_bytes: Bytes of the output at float32 for one sample.
        rf: Receptive field of an output unit, or None where it is not defined/tracked.
        error: What is wrong with this node, or None.
        fix: A suggested fix for ``error``, or None.
        warnings: Non-fatal remarks (misaligned branches, untracked fields, opaque node).
        formulas: Lines with the values substituted, keyed "output_shape", "params", "macs",
            "ops", "rf".
    """

    name: str
    kind: str
    group: str
    family: str
    input_shapes: tuple[Any, ...]
    output_shape: Any
    params: int = 0
    frozen_params: int = 0
    buffers: int = 0
    macs: int = 0
    ops: int = 0
    memory_bytes: int = 0
    rf: RF | None = None
    error: str | None = None
    fix: str | None = None
    warnings: tuple[str, ...] = ()
    formulas: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: _EMPTY)

    @property
    def total_params(self) -> int:
        """Trainable plus frozen parameters."""
        return self.params + self.frozen_params


@dataclass(frozen=True)
class GroupAnalysis:
    """Totals of a group (module container) over all nodes inside it, subgroups included.

    Attributes:
        name: Group path (``layer2.0``).
        nodes: Names of its nodes in execution order.
        params: Trainable parameters.
        frozen_params: Frozen parameters.
        buffers: Buffers.
        macs: Multiply-accumulates.
        ops: Element-wise operations.
        memory_bytes: Sum of its nodes' output bytes.
        output_node: The last node of the group (its output).
        output_shape: Output shape of that node.
        rf: Receptive field of that node.
    """

    name: str
    nodes: tuple[str, ...]
    params: int
    frozen_params: int
    buffers: int
    macs: int
    ops: int
    memory_bytes: int
    output_node: str
    output_shape: Any
    rf: RF | None

    @property
    def total_params(self) -> int:
        """Trainable plus frozen parameters."""
        return self.params + self.frozen_params

    @property
    def depth(self) -> int:
        """Nesting depth: 1 for a top-level group."""
        return self.name.count(".") + 1


@dataclass(frozen=True)
class Analysis:
    """Result of :func:`analyse`.

    Attributes:
        name: Graph name.
        input_shape: Shape of the first input.
        order: Node names in execution order.
        nodes: Per-node results.
        groups: Per-group totals, parents before children.
        params: Total trainable parameters (training-only nodes included, as torch counts
            the model's parameters).
        frozen_params: Total frozen parameters.
        buffers: Total buffers.
        macs: Total MACs for one sample at inference: ``training_only`` nodes (auxiliary
            classifiers) are left out, as in torchvision's figures; their own entries in
            ``nodes`` and ``groups`` still show their MACs.
        ops: Total element-wise operations for one sample at inference (the same rule).
        memory_bytes: Sum of all node outputs at float32 for one sample (the forward
            activations a training step keeps, training-only nodes included).
        errors: (node, message) for every node with an error.
        warnings: (node, message) for every warning.
    """

    name: str
    input_shape: tuple[int, ...] | None
    order: tuple[str, ...]
    nodes: Mapping[str, NodeAnalysis]
    groups: Mapping[str, GroupAnalysis]
    params: int
    frozen_params: int
    buffers: int
    macs: int
    ops: int
    memory_bytes: int
    errors: tuple[tuple[str, str], ...]
    warnings: tuple[tuple[str, str], ...]

    @property
    def total_params(self) -> int:
        """Trainable plus frozen parameters."""
        return self.params + self.frozen_params

    @property
    def ok(self) -> bool:
        """True when no node has an error."""
        return not self.errors

    def __getitem__(self, name: str) -> NodeAnalysis:
        return self.nodes[name]

    def check(self) -> None:
        """Raise the first problem, for callers that need a valid graph (build, train).

        Raises:
            ShapeError: Naming the node, what it expected and got, and the fix if one exists.
        """
        for name, message in self.errors:
            raise ShapeError(message, node=name, fix=self.nodes[name].fix)


class _Formulas(Mapping[str, tuple[str, ...]]):
    """The worked formulas of one node, written out when first read.

    Only the node the inspector shows needs them; writing every node's text at analysis
    time cost a fifth of analysing DenseNet-201. Reading from several threads is safe: each
    computes the same text.
    """

    __slots__ = ("_args", "_data")

    def __init__(
        self,
        make: Callable[[dict, list, Any, Counts], dict[str, list[str]]] | None,
        params: dict[str, Any],
        in_shapes: list[Any],
        out: Any,
        counts: Counts,
        rf_lines: list[str],
    ) -> None:
        self._args = (make, params, in_shapes, out, counts, rf_lines)
        self._data: dict[str, tuple[str, ...]] | None = None

    def _get(self) -> dict[str, tuple[str, ...]]:
        data = self._data
        if data is None:
            make, params, in_shapes, out, counts, rf_lines = self._args
            try:
                raw = dict(make(params, in_shapes, out, counts)) if make else {}
            except Exception as e:  # a formula must never hide the numbers
                raw = {"output_shape": [f"formulas not available: {e}"]}
            if rf_lines:
                raw["rf"] = rf_lines
            data = self._data = {k: tuple(v) for k, v in raw.items()}
        return data

    def __getitem__(self, key: str) -> tuple[str, ...]:
        return self._get()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._get())

    def __len__(self) -> int:
        return len(self._get())

    def __repr__(self) -> str:
        return repr(self._get())


def _numel(shape: Any) -> int:
    if shape is None:
        return 0
    if isinstance(shape, MultiShape):
        return sum(_numel(s) for s in shape)
    return prod(shape)


def _opaque(node: Node, in_shapes: list[Any]) -> dict[str, Any]:
    """Figures of an opaque node: its measured shape and the counts kept at import."""
    p = node.params
    out = node.measured_shape
    total = int(p.get("num_params", 0))
    trainable = int(p.get("num_trainable", total))
    what = p.get("type") or p.get("function") or "module"
    return {
        "output_shape": out,
        "counts": Counts(params=trainable, buffers=int(p.get("num_buffers", 0))),
        "frozen": total - trainable,
        "rf": None,
        "warnings": [
            f"opaque {what}: its output shape was measured at import; MACs and the "
            f"receptive field are not computed"
        ],
        "formulas": {
            "output_shape": [f"output = {shape_str(out)} (measured at import)"],
            "params": [f"params = {total:,} (counted from the kept module)"],
        },
    }


def _upstream_window(graph: ArchGraph, name: str, depth: int = 8) -> Node | None:
    """The nearest convolution or pooling node feeding ``name`` through pointwise nodes."""
    for _ in range(depth):
        if name not in graph:
            return None
        node = graph[name]
        if node.kind.startswith(("conv", "max_pool", "avg_pool")) and "transpose" not in node.kind:
            return node
        if len(node.inputs) != 1:
            return None
        name = node.inputs[0]
    return None


def _merge_fix(graph: ArchGraph, node: Node, in_shapes: list[Any]) -> str | None:
    """For a merge of branches with different spatial sizes: the padding that aligns them."""
    shapes = [s for s in in_shapes if isinstance(s, tuple) and not isinstance(s, MultiShape)]
    if len(shapes) != len(in_shapes) or len(shapes) < 2:
        return None
    if any(len(s) != len(shapes[0]) or len(s) < 3 for s in shapes):
        return None
    spatial = [tuple(s[1:]) for s in shapes]
    target = max(set(spatial), key=lambda t: (spatial.count(t), t))
    hw = "x".join(str(v) for v in target)
    for src, sp in zip(node.inputs, spatial, strict=True):
        if sp == target:
            continue
        win = _upstream_window(graph, src)
        if win is None:
            continue
        try:
            p = ops.get(win.kind).resolve(win.params)
        except Exception:
            return None
        n = len(target)
        k = ops._tuple(p["kernel_size"], n)
        d = ops._tuple(p.get("dilation", 1), n)
        s_raw = p.get("stride", 1)
        s = ops._tuple(p["kernel_size"] if s_raw is None else s_raw, n)
        if all(v == 1 for v in s) and all((d[a] * (k[a] - 1)) % 2 == 0 for a in range(n)):
            pads = [d[a] * (k[a] - 1) // 2 for a in range(n)]
            pad = pads[0] if len(set(pads)) == 1 else pads
            return f"padding={pad} on {win.name} keeps {hw}"
        return f"change the stride or padding of {win.name} so that it gives {hw}"
    return None


def analyse(graph: ArchGraph) -> Analysis:
    """Compute shapes, counts, receptive fields and formulas for every node and group.

    Args:
        graph: The architecture; it is not modified.

    Returns:
        The frozen :class:`Analysis`. Problems are reported in it, never raised.
    """
    order, cyclic = graph._topo()
    shapes: dict[str, Any] = {}
    fields: dict[str, RF | None] = {}
    results: dict[str, NodeAnalysis] = {}
    nodes = graph.nodes

    for name in order:
        node = nodes[name]
        spec = ops.REGISTRY.get(node.kind)
        family = "opaque" if node.kind == "opaque" else (spec.family if spec else "opaque")
        in_shapes = [shapes.get(i) for i in node.inputs]
        error = fix = None
        warnings: list[str] = []
        out: Any = None
        counts = Counts()
        frozen = 0
        rf: RF | None = None
        formulas: dict[str, list[str]] = {}
        lazy: _Formulas | None = None
        missing = [i for i in node.inputs if i not in nodes]
        if missing:
            error = f"input {missing[0]!r} does not exist"
            fix = "connect an existing node"
        elif node.kind == "opaque":
            if any(s is None for s in in_shapes):
                pass
            else:
                o = _opaque(node, in_shapes)
                out, counts, frozen = o["output_shape"], o["counts"], o["frozen"]
                warnings += o["warnings"]
                formulas = o["formulas"]
        elif spec is None:
            close = ops.suggest_kinds(node.kind)
            error = f"unknown kind {node.kind!r}"
            fix = f"did you mean {', '.join(close)}?" if close else None
        elif any(s is None for s in in_shapes):
            pass  # upstream problem: this node's figures are unknown, not wrong
        else:
            lo, hi = spec.arity
            try:
                if len(in_shapes) < lo or (hi is not None and len(in_shapes) > hi):
                    raise ParamError(
                        f"{node.kind} takes {lo if hi == lo else f'{lo}+'} inputs, "
                        f"got {len(in_shapes)}"
                    )
                params = spec.resolve(node.params)
                out = spec.shape(params, in_shapes)
            except (ShapeError, ParamError) as e:
                error, fix = e.problem, e.fix
                if e.expected is not None or e.actual is not None:
                    error += f" (expected {ops._fmt_val(e.expected)}, got {ops._fmt_val(e.actual)})"
                if node.kind in ("add", "mul", "cat"):
                    fix = _merge_fix(graph, node, in_shapes) or fix
            except Exception as e:  # a rule must never take the whole analysis down
                error = f"cannot compute the output shape: {e}"
            if error is None:
                try:
                    counts = spec.counts(params, in_shapes, out)
                except Exception as e:
                    warnings.append(f"counts not available: {e}")
                try:
                    in_fields = [fields.get(i) for i in node.inputs]
                    rf, rf_lines, rf_warn = spec.rf(params, in_fields, in_shapes, out)
                    warnings += rf_warn
                except Exception as e:
                    rf, rf_lines = None, []
                    warnings.append(f"receptive field not available: {e}")
                if spec.formulas is not None or rf_lines:
                    lazy = _Formulas(spec.formulas, params, list(in_shapes), out, counts, rf_lines)
                if node.frozen:
                    frozen, counts = (
                        counts.params,
                        Counts(0, counts.buffers, counts.macs, counts.ops),
                    )
        if name in cyclic:
            error = "part of a cycle"
        shapes[name] = out
        fields[name] = rf
        results[name] = NodeAnalysis(
            name=name,
            kind=node.kind,
            group=node.group,
            family=family,
            input_shapes=tuple(in_shapes),
            output_shape=out,
            params=counts.params,
            frozen_params=frozen,
            buffers=counts.buffers,
            macs=counts.macs,
            ops=counts.ops,
            memory_bytes=_numel(out) * BYTES_PER_VALUE,
            rf=rf,
            error=error,
            fix=fix,
            warnings=tuple(warnings),
            formulas=lazy
            if lazy is not None
            else MappingProxyType({k: tuple(v) for k, v in formulas.items()})
            if formulas
            else _EMPTY,
        )
    for name in cyclic:
        node = nodes[name]
        results[name] = NodeAnalysis(
            name=name,
            kind=node.kind,
            group=node.group,
            family="opaque",
            input_shapes=(),
            output_shape=None,
            error=f"part of a cycle through {', '.join(cyclic[:5])}",
            fix="remove one of the edges of the cycle",
        )
    full_order = order + cyclic
    groups = _group_totals(graph, full_order, results)
    return Analysis(
        name=graph.name,
        input_shape=graph.input_shape,
        order=tuple(full_order),
        nodes=MappingProxyType(results),
        groups=MappingProxyType(groups),
        params=sum(r.params for r in results.values()),
        frozen_params=sum(r.frozen_params for r in results.values()),
        buffers=sum(r.buffers for r in results.values()),
        macs=sum(r.macs for r in results.values() if not nodes[r.name].training_only),
        ops=sum(r.ops for r in results.values() if not nodes[r.name].training_only),
        memory_bytes=sum(r.memory_bytes for r in results.values()),
        errors=tuple((r.name, r.error) for r in results.values() if r.error),
        warnings=tuple((r.name, w) for r in results.values() for w in r.warnings),
    )


def _group_totals(
    graph: ArchGraph, order: list[str], results: dict[str, NodeAnalysis]
) -> dict[str, GroupAnalysis]:
    members: dict[str, list[str]] = {g: [] for g in graph.groups()}
    # params, frozen, buffers, macs, ops, memory: one pass over the nodes, not six per group
    sums: dict[str, list[int]] = {g: [0, 0, 0, 0, 0, 0] for g in members}
    nodes = graph.nodes
    for name in order:
        group = nodes[name].group
        if not group:
            continue
        r = results[name]
        vals = (r.params, r.frozen_params, r.buffers, r.macs, r.ops, r.memory_bytes)
        while group:
            members[group].append(name)
            acc = sums[group]
            for k in range(6):
                acc[k] += vals[k]
            group = group.rpartition(".")[0]
    out: dict[str, GroupAnalysis] = {}
    for g, names in members.items():
        last = results[names[-1]]
        params, frozen, buffers, macs, n_ops, memory = sums[g]
        out[g] = GroupAnalysis(
            name=g,
            nodes=tuple(names),
            params=params,
            frozen_params=frozen,
            buffers=buffers,
            macs=macs,
            ops=n_ops,
            memory_bytes=memory,
            output_node=last.name,
            output_shape=last.output_shape,
            rf=last.rf,
        )
    return out


def format_count(n: float, unit: str = "") -> str:
    """``4.09 G``-style text for large counts (MACs, ops, bytes)."""
    for div, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= div:
            return f"{n / div:.2f} {prefix}{unit}"
    return f"{int(n)} {unit}".rstrip()
