"""Editing an architecture: named edits with undo and redo, and a live analysis after each one.

An :class:`EditSession` owns an :class:`~cnnviz.core.graph.ArchGraph` and its current
:class:`~cnnviz.core.analysis.Analysis`. Every change goes through one of its methods
(:meth:`~EditSession.insert`, :meth:`~EditSession.delete`, :meth:`~EditSession.set_params`,
:meth:`~EditSession.wrap_residual` ...), which

* checks the request and, if it cannot be done (an unknown node, a bad parameter, a cycle),
  returns an :class:`EditResult` with ``ok=False`` and a message, leaving the graph as it was;
  nothing is raised;
* otherwise applies it as an :class:`Edit` (a command with ``do`` / ``undo``) pushed on the undo
  stack under a name such as ``"Insert conv2d after features.3"``, re-analyses the graph and calls
  the listeners. An edit that makes shapes disagree is applied: the analysis marks the nodes
  at fault with the reason and a fix, and :attr:`EditSession.can_train` turns False with the
  reason.

Nodes are copy-on-write: an edit never changes a :class:`~cnnviz.core.graph.Node` object in
place, it replaces it with a changed copy. A state of the graph is then just the ordered list of
its node objects, so undo and redo swap lists in microseconds. Callers must change the graph
only through the session.

Re-analysis is a full :func:`~cnnviz.core.analysis.analyse` (about 12 ms for ResNet-50): an
incremental one would help little, because an edit near the input (the input size, the first
convolution) changes every node downstream, which is the whole graph; see
``benchmarks/editing.py``.

Example:
    >>> from cnnviz.core.edit import EditSession
    >>> session = EditSession(graph)                       # doctest: +SKIP
    >>> session.insert("conv_bn_relu", "layer1.0.relu_1")  # doctest: +SKIP
    >>> session.undo_name                                  # doctest: +SKIP
    'Insert conv_bn_relu after layer1.0.relu_1'
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cnnviz.core import blocks, ops
from cnnviz.core.analysis import Analysis, analyse
from cnnviz.core.graph import ArchGraph, Node
from cnnviz.errors import CnnvizError

__all__ = [
    "POSITIONS",
    "ChangeEvent",
    "Edit",
    "EditError",
    "EditResult",
    "EditSession",
    "graphs_equal",
]

POSITIONS = ("after", "before", "parallel")
"""Where :meth:`EditSession.insert` puts new nodes relative to the anchor node."""

# Kinds written as plain functions (no submodule, no state_dict entry) when inserted by hand.
_FUNCTION_KINDS = frozenset(
    {"add", "mul", "cat", "flatten", "getitem", "chunk", "reshape", "permute", "transpose", "mean"}
)
_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$|^[0-9]+$")


class EditError(CnnvizError):
    """An edit that cannot be made; the session turns it into an ``ok=False`` result."""


def graphs_equal(a: ArchGraph, b: ArchGraph) -> bool:
    """True when two graphs have the same nodes (in order), parameters, edges and outputs."""
    return a.to_dict() == b.to_dict()


@dataclass(frozen=True)
class EditResult:
    """What became of a requested edit.

    Attributes:
        ok: True when the edit was applied.
        message: For a refused edit, why (naming the node or parameter); for an applied one,
            its name plus any problem the analysis now reports.
        name: The edit's name as shown in the Edit menu ("" when refused).
        created: Names of the nodes the edit added (a block's nodes, a merge, a projection).
        changed: Names of every node added, removed or changed.
    """

    ok: bool
    message: str
    name: str = ""
    created: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return self.ok


@dataclass(frozen=True)
class ChangeEvent:
    """Passed to every listener after the graph changed.

    Attributes:
        action: ``"edit"``, ``"undo"``, ``"redo"``, ``"load"`` or ``"saved"`` (nothing changed
            but the dirty flag).
        name: Name of the edit done, undone or redone ("" for load / saved).
        changed: Nodes added, removed or changed (empty for load: everything may have).
        version: :attr:`EditSession.version` after the change.
    """

    action: str
    name: str
    changed: tuple[str, ...]
    version: int


@dataclass(frozen=True)
class _State:
    nodes: tuple[Node, ...]
    outputs: tuple[str, ...]

    @staticmethod
    def of(graph: ArchGraph) -> _State:
        return _State(tuple(graph.nodes.values()), tuple(graph.outputs))

    def apply(self, graph: ArchGraph) -> None:
        graph.set_nodes(self.nodes, self.outputs)


@dataclass(frozen=True)
class Edit:
    """One applied edit: a command that can be undone and redone.

    Attributes:
        name: Shown in the Edit menu ("Insert conv2d after features.3").
        changed: Nodes added, removed or changed.
        created: Nodes added.
        serial: Unique number of the edit in its session (identifies saved states).
    """

    name: str
    changed: tuple[str, ...]
    created: tuple[str, ...]
    serial: int
    _before: _State = field(repr=False)
    _after: _State = field(repr=False)

    def do(self, graph: ArchGraph) -> None:
        """Apply the edit to ``graph`` (which must be in the state before it)."""
        self._after.apply(graph)

    def undo(self, graph: ArchGraph) -> None:
        """Revert the edit on ``graph`` (which must be in the state after it)."""
        self._before.apply(graph)


# ---------------------------------------------------------------------------- work copy
class _Work:
    """A tentative new state: a shallow copy of the node list with copy-on-write nodes."""

    def __init__(self, graph: ArchGraph, analysis: Analysis) -> None:
        self.graph = graph
        self.analysis = analysis
        self.order: list[str] = list(graph.nodes)
        self.nodes: dict[str, Node] = dict(graph.nodes)
        self.outputs: list[str] = list(graph.outputs)
        self.changed: dict[str, None] = {}
        self.created: dict[str, None] = {}
        self._own: set[str] = set()
        self._taken: set[str] | None = None

    # reading
    def node(self, name: str) -> Node:
        try:
            return self.nodes[name]
        except KeyError:
            close = _close(name, self.nodes)
            raise EditError(f"there is no node {name!r}{close}") from None

    def shape(self, name: str) -> Any:
        """Output shape of an existing, unchanged node (from the session's analysis)."""
        r = self.analysis.nodes.get(name)
        return None if r is None else r.output_shape

    def successors(self, name: str) -> list[str]:
        return [n for n in self.order if name in self.nodes[n].inputs]

    # writing
    def edit(self, name: str) -> Node:
        """The node, as a private copy that may be changed."""
        node = self.node(name)
        if name not in self._own:
            node = Node(
                name=node.name,
                kind=node.kind,
                params=copy.deepcopy(node.params),
                inputs=list(node.inputs),
                group=node.group,
                module_path=node.module_path,
                frozen=node.frozen,
                training_only=node.training_only,
                module=node.module,
                measured_shape=node.measured_shape,
            )
            self.nodes[name] = node
            self._own.add(name)
        self.changed[name] = None
        return node

    def add(self, node: Node, *, after: str | None = None, before: str | None = None) -> None:
        if node.name in self.nodes:
            raise EditError(f"a node named {node.name!r} exists already")
        if after is not None:
            self.order.insert(self.order.index(after) + 1, node.name)
        elif before is not None:
            self.order.insert(self.order.index(before), node.name)
        else:
            self.order.append(node.name)
        self.nodes[node.name] = node
        self._own.add(node.name)
        self.changed[node.name] = None
        self.created[node.name] = None
        self._taken = None

    def remove(self, name: str) -> None:
        self.node(name)
        del self.nodes[name]
        self.order.remove(name)
        self.outputs = [o for o in self.outputs if o != name]
        self.changed[name] = None
        self.created.pop(name, None)
        self._taken = None

    def rewire(self, old: str, new: str, exclude: Iterable[str] = ()) -> None:
        """Every consumer of ``old`` (but ``exclude``) reads ``new`` instead; outputs too."""
        skip = set(exclude)
        for n in list(self.order):
            if n in skip or old not in self.nodes[n].inputs:
                continue
            node = self.edit(n)
            node.inputs = [new if i == old else i for i in node.inputs]
        self.outputs = [new if o == old else o for o in self.outputs]

    # names
    def taken(self) -> set[str]:
        """Node names, module paths, groups and all their prefixes: unusable as new names."""
        if self._taken is None:
            taken: set[str] = set()
            for n in self.nodes.values():
                for path in (n.name, n.module_path, n.group):
                    while path:
                        if path in taken:
                            break
                        taken.add(path)
                        path = path.rpartition(".")[0]
            self._taken = taken
        return self._taken

    def fresh(self, group: str, base: str) -> str:
        """A new name ``group.base`` (or ``base_1`` ...) clashing with nothing."""
        taken = self.taken()
        prefix = f"{group}." if group else ""
        cand, k = f"{prefix}{base}", 1
        while cand in taken:
            cand = f"{prefix}{base}_{k}"
            k += 1
        taken.add(cand)
        return cand

    def finish(self) -> _State:
        nodes = tuple(self.nodes[n] for n in self.order)
        probe = ArchGraph("probe")
        probe.set_nodes(nodes)
        _, cyclic = probe._topo()
        if cyclic:
            raise EditError(
                f"that would make a cycle through {', '.join(cyclic[:4])}; "
                "a network must flow one way"
            )
        return _State(nodes, tuple(dict.fromkeys(self.outputs)))


def _common_group(w: _Work, names: Iterable[str]) -> str:
    """The innermost group containing every node of ``names``."""
    groups = [w.nodes[n].group.split(".") if w.nodes[n].group else [] for n in names]
    common: list[str] = []
    for parts in zip(*groups, strict=False):
        if len(set(parts)) != 1:
            break
        common.append(parts[0])
    return ".".join(common)


def _close(name: str, names: Iterable[str]) -> str:
    import difflib

    hits = difflib.get_close_matches(name, list(names), n=3, cutoff=0.6)
    return f"; did you mean {', '.join(hits)}?" if hits else ""


# ------------------------------------------------------------------- parameter fitting
def _channels(shape: Any) -> int | None:
    if isinstance(shape, tuple) and not isinstance(shape, ops.MultiShape) and shape:
        return int(shape[0])
    return None


def _is_tensor_shape(shape: Any) -> bool:
    return isinstance(shape, tuple) and not isinstance(shape, ops.MultiShape)


def _fit_new(kind: str, shape: Any, given: Mapping[str, Any]) -> dict[str, Any]:
    """Parameters for a new node of ``kind`` reading ``shape``: given values win."""
    p: dict[str, Any] = {}
    c = _channels(shape)
    tensor = _is_tensor_shape(shape)
    if kind.startswith(("conv", "conv_transpose")) and c is not None:
        p.update(in_channels=c, out_channels=c, kernel_size=3)
        k = given.get("kernel_size", 3)
        d = given.get("dilation", 1)
        if isinstance(k, int) and isinstance(d, int) and not kind.startswith("conv_transpose"):
            p["padding"] = d * (k - 1) // 2
        if kind.startswith("conv_transpose"):
            p.update(kernel_size=2, stride=2)
    elif kind in ("batch_norm1d", "batch_norm2d", "instance_norm2d") and c is not None:
        p["num_features"] = c
    elif kind in ("layer_norm2d",) and c is not None:
        p["num_channels"] = c
    elif kind == "group_norm" and c is not None:
        p.update(num_channels=c, num_groups=math.gcd(c, 32))
    elif kind == "layer_norm" and tensor:
        p["normalized_shape"] = [int(shape[-1])]
    elif kind == "linear" and tensor:
        p.update(in_features=int(shape[-1]), out_features=int(shape[-1]))
    elif kind in ("max_pool1d", "max_pool2d", "avg_pool1d", "avg_pool2d", "max_unpool2d"):
        p["kernel_size"] = 2
    elif kind == "reshape":
        p["shape"] = [-1]
    elif kind == "permute" and tensor:
        p["dims"] = list(range(len(shape) + 1))
    elif kind == "transpose":
        p.update(dim0=1, dim1=2)
    p.update(given)
    return p


# (kind prefix, parameter that must equal the input's channels / features)
def _input_param(kind: str) -> str | None:
    if kind.startswith(("conv", "conv_transpose")):
        return "in_channels"
    if kind in ("batch_norm1d", "batch_norm2d", "instance_norm2d"):
        return "num_features"
    if kind in ("group_norm", "layer_norm2d"):
        return "num_channels"
    if kind == "linear":
        return "in_features"
    return None


def _adapt(work: _Work, start: Iterable[str]) -> list[str]:
    """Make channel / feature parameters downstream of ``start`` match their inputs again.

    Shapes are propagated through the tentative graph in topological order; a convolution,
    batch norm or linear layer whose ``in_channels`` (``num_features``, ``in_features``) no
    longer fits its input is changed to fit. What cannot be fixed so (two branches of an add
    that disagree, a kernel larger than the map) is left for the analysis to mark.

    Returns:
        The nodes changed.
    """
    order = work.order
    nodes = work.nodes
    succ: dict[str, list[str]] = {n: [] for n in order}
    for n in order:
        for i in dict.fromkeys(nodes[n].inputs):
            if i in succ:
                succ[i].append(n)
    down: set[str] = set()
    stack = [s for s in start if s in nodes]
    while stack:
        n = stack.pop()
        for s in succ.get(n, ()):
            if s not in down:
                down.add(s)
                stack.append(s)
    if not down:
        return []
    probe = ArchGraph("probe")
    probe.set_nodes(nodes[n] for n in order)
    topo, _ = probe._topo()
    shapes: dict[str, Any] = {}
    fixed: list[str] = []
    for name in topo:
        node = nodes[name]
        if name not in down and name not in work.changed:
            out = work.shape(name)
            if out is not None:
                shapes[name] = out
                continue
        shapes[name] = None
        if node.kind == "opaque":
            shapes[name] = node.measured_shape
            continue
        spec = ops.REGISTRY.get(node.kind)
        ins = [shapes.get(i) for i in node.inputs]
        if spec is None or any(s is None for s in ins):
            continue
        if name in down and ins and _is_tensor_shape(ins[0]):
            key = _input_param(node.kind)
            want = int(ins[0][-1] if node.kind == "linear" else ins[0][0])
            if key and node.params.get(key) != want:
                old = node.params.get(key)
                node = work.edit(name)
                node.params[key] = want
                if key == "in_channels" and node.params.get("groups", 1) == old and old:
                    # depthwise: one group per channel, and as many outputs
                    node.params["groups"] = want
                    if node.params.get("out_channels") == old:
                        node.params["out_channels"] = want
                if node.kind == "group_norm" and want % node.params.get("num_groups", 1):
                    node.params["num_groups"] = math.gcd(want, node.params.get("num_groups", 1))
                fixed.append(name)
            if node.kind == "layer_norm" and isinstance(node.params.get("normalized_shape"), list):
                ns = node.params["normalized_shape"]
                if len(ns) == 1 and ns[0] != ins[0][-1]:
                    node = work.edit(name)
                    node.params["normalized_shape"] = [int(ins[0][-1])]
                    fixed.append(name)
        try:
            shapes[name] = spec.shape(spec.resolve(node.params), ins)
        except Exception:
            shapes[name] = None
    return fixed


# ------------------------------------------------------------------------------ session
Listener = Callable[[ChangeEvent], None]


class EditSession:
    """An architecture being edited: the graph, its analysis, undo/redo and listeners.

    Args:
        graph: The graph to edit; the session changes it in place (copy it first to keep the
            original).
        analysis: Its analysis, if already computed.

    Attributes:
        graph: The graph (change it only through the session's methods).
        analysis: The analysis of the current graph, recomputed after every change.
        version: Counts every change (edit, undo, redo, load).
    """

    def __init__(self, graph: ArchGraph, analysis: Analysis | None = None) -> None:
        self.graph = graph
        self.analysis: Analysis = analysis if analysis is not None else analyse(graph)
        self.version = 0
        self._undo: list[Edit] = []
        self._redo: list[Edit] = []
        self._serial = 0
        self._saved_serial: int | None = 0
        self._listeners: list[Listener] = []
        self._train_reason: str | None | bool = False  # False: not computed yet

    # ------------------------------------------------------------------ listeners
    def add_listener(self, listener: Listener) -> None:
        """Call ``listener(event)`` after every change of the graph or of the dirty flag."""
        if listener not in self._listeners:
            self._listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        """Stop calling ``listener`` (no error when it was not registered)."""
        if listener in self._listeners:
            self._listeners.remove(listener)

    def _notify(self, action: str, name: str, changed: tuple[str, ...]) -> None:
        event = ChangeEvent(action, name, changed, self.version)
        for listener in list(self._listeners):
            listener(event)

    # ----------------------------------------------------------------- state
    @property
    def can_undo(self) -> bool:
        """True when there is an edit to undo."""
        return bool(self._undo)

    @property
    def can_redo(self) -> bool:
        """True when there is an undone edit to redo."""
        return bool(self._redo)

    @property
    def undo_name(self) -> str | None:
        """Name of the edit :meth:`undo` would revert, for "Undo <name>"."""
        return self._undo[-1].name if self._undo else None

    @property
    def redo_name(self) -> str | None:
        """Name of the edit :meth:`redo` would apply again."""
        return self._redo[-1].name if self._redo else None

    @property
    def history(self) -> list[str]:
        """Names of the applied edits, oldest first."""
        return [e.name for e in self._undo]

    @property
    def dirty(self) -> bool:
        """True when the graph differs from the last saved (or loaded) state."""
        current = self._undo[-1].serial if self._undo else 0
        return current != self._saved_serial

    def mark_saved(self) -> None:
        """Record the current state as saved (the dirty flag clears)."""
        self._saved_serial = self._undo[-1].serial if self._undo else 0
        self._notify("saved", "", ())

    def save(self, path: str | Path) -> None:
        """Write the graph as an architecture ``.json`` file and mark it saved.

        The file is written beside the target and renamed over it, so a crash never leaves
        half a file.

        Raises:
            CnnvizError: The file cannot be written.
        """
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        try:
            tmp.write_text(self.graph.to_json(), encoding="utf-8")
            tmp.replace(path)
        except OSError as e:
            raise CnnvizError(f"cannot save {path}: {e}") from None
        self.mark_saved()

    def load(self, graph: ArchGraph) -> None:
        """Start editing another graph: history cleared, state counted as saved."""
        self.graph = graph
        self._undo.clear()
        self._redo.clear()
        self._saved_serial = 0
        self._refresh()
        self._notify("load", "", ())

    @property
    def can_train(self) -> bool:
        """True when the graph can be built and trained (no errors, output known)."""
        return self.cannot_train_reason is None

    @property
    def cannot_train_reason(self) -> str | None:
        """Why the graph cannot be trained now (for the tooltip), or None when it can."""
        if self._train_reason is False:
            self._train_reason = self._compute_train_reason()
        return self._train_reason  # type: ignore[return-value]

    def _compute_train_reason(self) -> str | None:
        a = self.analysis
        if a.errors:
            name, msg = a.errors[0]
            more = f" (and {len(a.errors) - 1} more)" if len(a.errors) > 1 else ""
            fix = a.nodes[name].fix
            return f"{name}: {msg}" + (f"; fix: {fix}" if fix else "") + more
        issues = self.graph.validate()
        if issues:
            return str(issues[0]) + (f" (and {len(issues) - 1} more)" if len(issues) > 1 else "")
        for n in self.graph:
            if n.kind == "opaque" and n.module is None:
                return (
                    f"{n.name}: this opaque node kept no code (loaded from a file); import the "
                    "model again from its source"
                )
        outs = self.graph.outputs or ([a.order[-1]] if a.order else [])
        for o in outs:
            shape = a.nodes[o].output_shape if o in a.nodes else None
            if shape is None:
                return f"the output {o} has no known shape"
        return None

    def _refresh(self) -> None:
        self.analysis = analyse(self.graph)
        self._train_reason = False
        self.version += 1

    # ------------------------------------------------------------------ undo / redo
    def undo(self) -> EditResult:
        """Revert the last edit."""
        if not self._undo:
            return EditResult(False, "nothing to undo")
        e = self._undo.pop()
        e.undo(self.graph)
        self._redo.append(e)
        self._refresh()
        self._notify("undo", e.name, e.changed)
        return EditResult(True, f"Undid {e.name}", e.name, e.created, e.changed)

    def redo(self) -> EditResult:
        """Apply the last undone edit again."""
        if not self._redo:
            return EditResult(False, "nothing to redo")
        e = self._redo.pop()
        e.do(self.graph)
        self._undo.append(e)
        self._refresh()
        self._notify("redo", e.name, e.changed)
        return EditResult(True, f"Redid {e.name}", e.name, e.created, e.changed)

    # ------------------------------------------------------------------ machinery
    def _run(self, name: str | Callable[[], str], body: Callable[[_Work], Any]) -> EditResult:
        """Run ``body`` on a work copy; commit it as an edit, or report why it was refused."""
        work = _Work(self.graph, self.analysis)
        try:
            body(work)
            label = name() if callable(name) else name
            if not work.changed and work.outputs == self.graph.outputs:
                return EditResult(False, f"{label}: nothing to change")
            after = work.finish()
        except (EditError, blocks.BlockError, ops.ParamError, ops.ShapeError) as e:
            return EditResult(False, str(e))
        except Exception as e:  # noqa: BLE001 - an edit must never take the app down
            what = name if isinstance(name, str) else "the edit"
            return EditResult(False, f"{what} failed (internal error: {type(e).__name__}: {e})")
        before = _State.of(self.graph)
        self._serial += 1
        edit = Edit(label, tuple(work.changed), tuple(work.created), self._serial, before, after)
        edit.do(self.graph)
        self._undo.append(edit)
        self._redo.clear()
        self._refresh()
        self._notify("edit", edit.name, edit.changed)
        message = label
        if self.analysis.errors:
            node, msg = self.analysis.errors[0]
            fix = self.analysis.nodes[node].fix
            message += f"; now {node}: {msg}" + (f" (fix: {fix})" if fix else "")
        return EditResult(True, message, label, edit.created, edit.changed)

    # ------------------------------------------------------------------ insertion
    def insert(
        self,
        what: str,
        anchor: str,
        position: str = "after",
        params: Mapping[str, Any] | None = None,
        *,
        merge: str = "add",
        adapt: bool = True,
    ) -> EditResult:
        """Insert an operation kind or a ready block next to ``anchor``.

        Args:
            what: A kind of the op registry (``conv2d``) or a block name (``residual_basic``).
            anchor: The node next to which it goes.
            position: ``"after"`` (it reads the anchor's output and the anchor's consumers read
                it), ``"before"`` (on the anchor's first input edge) or ``"parallel"`` (a new
                branch reading the anchor's input, merged with the anchor's output).
            params: Parameters; channel counts are derived from the incoming shape.
            merge: For ``parallel``: ``"add"`` or ``"cat"``.
            adapt: Fit the channel parameters of the layers downstream to the new output.

        Returns:
            The result; ``created`` lists the new nodes.
        """
        if position not in POSITIONS:
            return EditResult(False, f"position must be one of {', '.join(POSITIONS)}")
        if merge not in ("add", "cat"):
            return EditResult(False, "merge must be 'add' or 'cat'")
        is_block = what in blocks.BLOCKS
        if not is_block and what not in ops.REGISTRY:
            close = _close(what, [*ops.REGISTRY, *blocks.BLOCKS])
            return EditResult(False, f"unknown operation or block {what!r}{close}")
        where = {"after": "after", "before": "before", "parallel": "in parallel with"}[position]

        def body(w: _Work) -> None:
            node = w.node(anchor)
            if position == "after":
                src, group = anchor, node.group
            else:
                if not node.inputs:
                    raise EditError(
                        f"{anchor} has no input, so nothing can go {where} it; insert after it"
                    )
                src, group = node.inputs[0], node.group
            shape = w.shape(src)
            if is_block:
                out = self._place_block(w, what, src, shape, group, params, position, anchor)
            else:
                out = self._place_op(w, what, src, shape, group, params, position, anchor)
            if position == "after":
                w.rewire(anchor, out, exclude=w.created)
            elif position == "before":
                a = w.edit(anchor)
                a.inputs[0] = out
            else:
                m = Node(
                    w.fresh(group, merge),
                    merge,
                    {"dim": 1} if merge == "cat" else {},
                    [anchor, out],
                    group,
                )
                w.rewire(anchor, m.name, exclude=w.created)
                w.add(m, after=out)
            if adapt:
                _adapt(w, [out] if position != "parallel" else list(w.created))

        return self._run(f"Insert {what} {where} {anchor}", body)

    def _place_op(
        self,
        w: _Work,
        kind: str,
        src: str,
        shape: Any,
        group: str,
        params: Mapping[str, Any] | None,
        position: str,
        anchor: str,
    ) -> str:
        spec = ops.REGISTRY[kind]
        if kind == "input" or spec.arity[1] == 0:
            raise EditError(f"{kind} nodes take no input, so they cannot be inserted on an edge")
        p = _fit_new(kind, shape, dict(params or {}))
        problems = ops.check_params(kind, p)
        if problems:
            raise EditError(f"{kind}: " + "; ".join(problems))
        name = w.fresh(group, kind)
        node = Node(
            name,
            kind,
            p,
            [src],
            group,
            module_path=None if kind in _FUNCTION_KINDS else name,
        )
        if position == "before":
            w.add(node, before=anchor)
        else:
            w.add(node, after=anchor)
        return name

    def _place_block(
        self,
        w: _Work,
        block: str,
        src: str,
        shape: Any,
        group: str,
        params: Mapping[str, Any] | None,
        position: str,
        anchor: str,
    ) -> str:
        gname = w.fresh(group, block)
        inst = blocks.instantiate(block, shape if _is_tensor_shape(shape) else None, params, gname)
        prev = anchor
        for n in inst.nodes:
            n.inputs = [src if i == blocks.INPUT else i for i in n.inputs]
            if position == "before":
                w.add(n, before=anchor)
            else:
                w.add(n, after=prev)
                prev = n.name
        return inst.output

    # ------------------------------------------------------------------ delete / replace
    def delete(self, names: str | Sequence[str], *, adapt: bool = True) -> EditResult:
        """Delete nodes and reconnect around them.

        Each consumer of a deleted node reads, instead, the first input of that node (followed
        through other deleted nodes), so deleting a layer of a chain joins the chain again.

        Args:
            names: A node name or several (e.g. all nodes of a group).
            adapt: Fit the channel parameters downstream to the new inputs.
        """
        sel = [names] if isinstance(names, str) else list(dict.fromkeys(names))
        if not sel:
            return EditResult(False, "nothing selected to delete")

        def body(w: _Work) -> None:
            gone = set()
            for n in sel:
                node = w.node(n)
                if node.kind == "input":
                    raise EditError(f"{n} is the network's input and cannot be deleted")
                gone.add(n)

            def source(i: str) -> str | None:
                seen = set()
                while i in gone:
                    if i in seen:
                        return None
                    seen.add(i)
                    ins = w.nodes[i].inputs
                    if not ins:
                        return None
                    i = ins[0]
                return i

            consumers = set()
            for n in list(w.order):
                if n in gone:
                    continue
                ins = w.nodes[n].inputs
                if any(i in gone for i in ins):
                    node = w.edit(n)
                    node.inputs = [s for s in (source(i) for i in ins) if s is not None]
                    consumers.add(n)
            new_outputs = [source(o) if o in gone else o for o in w.outputs]
            for n in sel:
                w.remove(n)
            w.outputs = [o for o in new_outputs if o is not None]
            if not w.outputs:
                raise EditError("that would delete the network's output")
            if adapt:
                _adapt(w, [i for c in consumers for i in w.nodes[c].inputs])

        label = f"Delete {sel[0]}" if len(sel) == 1 else f"Delete {len(sel)} nodes"
        return self._run(label, body)

    def replace(
        self, name: str, kind: str, params: Mapping[str, Any] | None = None, *, adapt: bool = True
    ) -> EditResult:
        """Change the kind of node ``name``, keeping its edges.

        Parameters the new kind also has are kept where still valid; channel counts are derived
        from the input; ``params`` override.
        """
        if kind not in ops.REGISTRY or kind == "input":
            return EditResult(False, f"unknown operation kind {kind!r}{_close(kind, ops.REGISTRY)}")

        def body(w: _Work) -> None:
            old = w.node(name)
            if old.kind == "input":
                raise EditError(f"{name} is the network's input; change the input size instead")
            spec = ops.REGISTRY[kind]
            lo, hi = spec.arity
            n_in = len(old.inputs)
            if n_in < lo or (hi is not None and n_in > hi):
                raise EditError(
                    f"{kind} takes {lo if lo == hi else f'{lo} or more'} input(s) but {name} has "
                    f"{n_in}; connect or disconnect edges first"
                )
            shape = w.shape(old.inputs[0]) if old.inputs else None
            keep = {}
            names = {p.name: p for p in spec.params}
            for k, v in old.params.items():
                if k in names and ops._check_value(names[k], v) is None:
                    keep[k] = v
            p = _fit_new(kind, shape, {**keep, **dict(params or {})})
            problems = ops.check_params(kind, p)
            if problems:
                raise EditError(f"{kind}: " + "; ".join(problems))
            node = w.edit(name)
            node.kind = kind
            node.params = p
            node.module = None
            node.measured_shape = None
            if kind in _FUNCTION_KINDS:
                node.module_path = None
            elif node.module_path is None:
                node.module_path = w.fresh(node.group, kind)
            if adapt:
                _adapt(w, [name])

        return self._run(f"Replace {name} with {kind}", body)

    # ------------------------------------------------------------------ parameters
    def set_params(self, name: str, adapt: bool = True, **changes: Any) -> EditResult:
        """Change hyper-parameters of node ``name``, checked against the kind's ParamSpecs.

        A value of None resets a parameter to its default (for parameters that are not
        optional). A value of the wrong type or out of bounds is refused with the reason; a
        value that makes shapes disagree downstream is applied and marked by the analysis.

        Args:
            name: The node.
            adapt: Fit the channel parameters of the layers downstream to the new output.
            **changes: New values, e.g. ``kernel_size=5``.
        """
        if not changes:
            return EditResult(False, "no parameter given")

        def body(w: _Work) -> None:
            node = w.node(name)
            if node.kind == "opaque":
                raise EditError(f"{name} is opaque: its parameters live in its own code")
            if node.kind == "input":
                if set(changes) != {"shape"}:
                    raise EditError("the input node has only the parameter 'shape'")
                self._set_input(w, node.name, changes["shape"])
                return
            spec = ops.REGISTRY.get(node.kind)
            if spec is None:
                raise EditError(f"{name} has the unknown kind {node.kind!r}; replace it first")
            new = dict(node.params)
            for k, v in changes.items():
                try:
                    ps = spec.param(k)
                except KeyError:
                    raise EditError(
                        f"{node.kind} has no parameter {k!r}"
                        f"{_close(k, [p.name for p in spec.params])}"
                    ) from None
                if v is None and not ps.optional:
                    if ps.default is ops.REQUIRED:
                        raise EditError(f"{name}: {k} must be given ({ps.doc})")
                    new.pop(k, None)
                    continue
                if isinstance(v, tuple):
                    v = list(v)
                bad = ops._check_value(ps, v)
                if bad:
                    raise EditError(f"{name}: {bad}")
                new[k] = v
            if new == node.params:
                return
            problems = ops.check_params(node.kind, new)
            if problems:
                raise EditError(f"{name}: " + "; ".join(problems))
            w.edit(name).params = new
            if adapt:
                _adapt(w, [name])

        text = ", ".join(f"{k}={v!r}" for k, v in changes.items())
        return self._run(f"Set {text} on {name}", body)

    def _set_input(self, w: _Work, name: str, shape: Any) -> None:
        if not isinstance(shape, (list, tuple)) or not shape:
            raise EditError("the input shape must be a list of sizes, e.g. [3, 32, 32]")
        if not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in shape):
            raise EditError(f"input sizes must be positive integers, got {list(shape)}")
        node = w.edit(name)
        node.params["shape"] = [int(s) for s in shape]
        _adapt(w, [name])

    def set_input_shape(self, shape: Sequence[int]) -> EditResult:
        """Change the input size (C, H, W); the first layers' channels and the first linear
        layer's features follow where they can."""
        inputs = self.graph.input_nodes
        if not inputs:
            return EditResult(False, "the graph has no input node")
        text = "x".join(str(s) for s in shape) if isinstance(shape, (list, tuple)) else str(shape)
        return self._run(
            f"Change input size to {text}", lambda w: self._set_input(w, inputs[0], shape)
        )

    def logits_nodes(self) -> list[str]:
        """The layers whose outputs are the class scores: the last linear or convolution on
        every path back from the output (FCN's skip scores included)."""
        return [n for n, _ in self._class_layers(self.analysis)]

    def _class_layers(self, a: Analysis) -> list[tuple[str, str]]:
        nodes = self.graph.nodes
        outs = self.graph.outputs or ([a.order[-1]] if a.order else [])
        if not outs:
            return []
        out_shape = a.nodes[outs[0]].output_shape if outs[0] in a.nodes else None
        if not _is_tensor_shape(out_shape) or not out_shape:
            return []
        classes = out_shape[-1] if len(out_shape) == 1 else out_shape[0]
        found: list[tuple[str, str]] = []
        seen: set[str] = set()
        stack = [outs[0]]
        while stack:
            n = stack.pop()
            if n in seen or n not in nodes:
                continue
            seen.add(n)
            node = nodes[n]
            if node.kind == "linear" and node.params.get("out_features") == classes:
                found.append((n, "out_features"))
                if node.params.get("in_features") == classes:
                    stack.extend(node.inputs)
                continue
            if node.kind.startswith(("conv", "conv_transpose")):
                if node.params.get("out_channels") == classes:
                    found.append((n, "out_channels"))
                    if node.params.get("in_channels") == classes:
                        stack.extend(node.inputs)
                continue
            if node.kind in ("input", "opaque", "parameter"):
                continue
            stack.extend(node.inputs)
        return found

    def set_num_classes(self, n: int) -> EditResult:
        """Change the number of classes: the out features of the layer(s) giving the scores."""
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            return EditResult(False, f"the number of classes must be a positive integer, got {n!r}")
        layers = self._class_layers(self.analysis)
        if not layers:
            return EditResult(
                False,
                "no linear or convolution layer gives the class scores here "
                "(the output's shape is unknown, or it ends in an opaque node)",
            )

        def body(w: _Work) -> None:
            for name, key in layers:
                node = w.edit(name)
                old = node.params.get(key)
                node.params[key] = n
                if key == "out_channels" and node.params.get("in_channels") == old:
                    # score upsampling (FCN): classes in, classes out, maybe one group each
                    node.params["in_channels"] = n
                    if node.params.get("groups", 1) == old:
                        node.params["groups"] = n
            _adapt(w, [name for name, _ in layers])

        return self._run(f"Change classes to {n}", body)

    # ------------------------------------------------------------------ edges
    def connect(self, src: str, dst: str, index: int | None = None) -> EditResult:
        """Make ``src`` an input of ``dst``.

        For a merge (add, mul, cat) the edge is added (at ``index``, default last). For an
        operation with one input, ``index=0`` replaces its input; without ``index`` it is
        refused while an input is connected.
        """

        def body(w: _Work) -> None:
            w.node(src)
            node = w.node(dst)
            if src == dst:
                raise EditError(f"{src} cannot feed itself")
            if node.kind == "input":
                raise EditError(f"{dst} is an input; nothing can feed it")
            spec = ops.REGISTRY.get(node.kind)
            hi = spec.arity[1] if spec else None
            node = w.edit(dst)
            if index is not None and hi is not None and len(node.inputs) >= hi:
                if not 0 <= index < len(node.inputs):
                    raise EditError(f"{dst} has no input {index}")
                node.inputs[index] = src
            elif hi is not None and len(node.inputs) >= hi:
                raise EditError(
                    f"{dst} ({node.kind}) takes {hi} input(s) and has them; disconnect one "
                    "first, or connect into a merge (add, cat)"
                )
            elif index is None:
                node.inputs.append(src)
            else:
                node.inputs.insert(max(0, min(index, len(node.inputs))), src)

        return self._run(f"Connect {src} to {dst}", body)

    def disconnect(self, src: str, dst: str) -> EditResult:
        """Remove the edge from ``src`` to ``dst`` (every occurrence). A node left without the
        inputs it needs is marked by the analysis."""

        def body(w: _Work) -> None:
            w.node(src)
            node = w.node(dst)
            if src not in node.inputs:
                raise EditError(f"{src} is not an input of {dst}")
            w.edit(dst).inputs = [i for i in node.inputs if i != src]

        return self._run(f"Disconnect {src} from {dst}", body)

    # ------------------------------------------------------------------ wrapping
    def _selection(self, w: _Work, names: Sequence[str]) -> tuple[list[str], str, str]:
        """The selection in graph order, its single outside source and its single exit."""
        sel = list(dict.fromkeys(names))
        if not sel:
            raise EditError("nothing selected")
        inside = set(sel)
        for n in sel:
            if w.node(n).kind == "input":
                raise EditError(f"{n} is the network's input; select the layers after it")
        sel = [n for n in w.order if n in inside]
        sources = {i for n in sel for i in w.nodes[n].inputs if i not in inside}
        if len(sources) != 1:
            raise EditError(
                "select a run of layers with one input: this selection reads from "
                + (", ".join(sorted(sources)) if sources else "nothing outside it")
            )
        exits = [
            n
            for n in sel
            if n in w.outputs
            or any(n in w.nodes[s].inputs for s in w.successors(n) if s not in inside)
        ]
        if len(exits) != 1:
            raise EditError(
                "select a run of layers with one output: "
                + (f"{', '.join(exits)} are all used outside it" if exits else "none is used")
            )
        return sel, next(iter(sources)), exits[0]

    def wrap_group(self, names: Sequence[str], group_name: str | None = None) -> EditResult:
        """Put the selected nodes into a new group (a block that collapses in the view and
        becomes one ``nn.Module`` class in exported code).

        The group is made inside the selection's innermost common group; node groups and
        module paths below that common group move into the new one.
        """
        if group_name is not None and not _NAME_RE.match(group_name):
            return EditResult(
                False, f"group name {group_name!r}: use letters, digits and _ (no dots or spaces)"
            )
        sel = list(dict.fromkeys(names))
        created: dict[str, str] = {}

        def body(w: _Work) -> None:
            if not sel:
                raise EditError("nothing selected")
            for n in sel:
                if w.node(n).kind == "input":
                    raise EditError(f"{n} is the network's input and stays outside groups")
            created["group"] = self._regroup(w, sel, group_name or "block")

        return self._run(
            lambda: f"Group {len(sel)} nodes as {created.get('group', group_name or 'block')}",
            body,
        )

    @staticmethod
    def _regroup(w: _Work, sel: Sequence[str], base: str) -> str:
        parent = _common_group(w, sel)
        new = w.fresh(parent, base)

        def reroot(path: str) -> str:
            if not parent:
                return f"{new}.{path}" if path else new
            if path == parent:
                return new
            if path.startswith(parent + "."):
                return new + path[len(parent) :]
            return path

        paths: dict[str, str] = {}
        for n in sel:
            node = w.edit(n)
            node.group = reroot(node.group)
            if node.module_path:
                old = node.module_path
                if old not in paths:
                    paths[old] = (
                        reroot(old) if (not parent or old.startswith(parent + ".")) else old
                    )
                node.module_path = paths[old]
        w._taken = None
        return new

    def wrap_residual(
        self,
        names: Sequence[str],
        *,
        group: bool = True,
        activation_after: bool = True,
    ) -> EditResult:
        """Add a shortcut around the selected run of layers: ``out = F(x) + shortcut(x)``.

        The selection must have one input ``x`` and one output. When its output shape differs
        from the input's (more channels, a stride), the shortcut is a projection: a 1x1
        convolution with that stride and a batch norm, as in ResNet.

        Args:
            names: The layers of the residual branch F (e.g. two conv-BN-ReLU units).
            group: Also put branch, shortcut and add into a new group ``res``, so the block
                collapses as one and exports as one class.
            activation_after: When the run ends with an activation (ReLU), add before it, as
                ResNet does (``relu(bn2(...) + x)``), instead of after it.
        """
        created: dict[str, Any] = {}

        def body(w: _Work) -> None:
            sel, src, exit_ = self._selection(w, names)
            end = exit_
            exit_node = w.nodes[exit_]
            act = None
            if (
                activation_after
                and ops.REGISTRY.get(exit_node.kind) is not None
                and ops.REGISTRY[exit_node.kind].family == "activation"
                and len(exit_node.inputs) == 1
                and exit_node.inputs[0] in sel
                and len(sel) > 1
            ):
                act, end = exit_, exit_node.inputs[0]
            x_shape, y_shape = w.shape(src), w.shape(end)
            if not (_is_tensor_shape(x_shape) and _is_tensor_shape(y_shape)):
                raise EditError(
                    "the shapes around the selection are unknown (an error upstream); fix it first"
                )
            base_group = _common_group(w, sel)
            shortcut = src
            if tuple(x_shape) != tuple(y_shape):
                shortcut = self._projection(w, src, x_shape, y_shape, base_group, sel[0])
            add = Node(w.fresh(base_group, "add"), "add", {}, [end, shortcut], base_group)
            if act is not None:
                w.add(add, before=act)
                a = w.edit(act)
                a.inputs = [add.name]
                if a.group != base_group:
                    # the activation now follows the sum: it belongs to the block, not the unit
                    a.group = base_group
                    if a.module_path:
                        a.module_path = w.fresh(base_group, a.module_path.rpartition(".")[2])
            else:
                w.rewire(exit_, add.name, exclude=set(sel) | set(w.created))
                w.add(add, after=exit_)
            if group:
                members = [*sel, *w.created]
                created["group"] = self._regroup(w, members, "res")

        def label() -> str:
            g = created.get("group")
            return f"Wrap {len(names)} nodes in a residual connection" + (f" ({g})" if g else "")

        return self._run(label, body)

    def _projection(self, w: _Work, src: str, x: tuple, y: tuple, group: str, before: str) -> str:
        if len(x) != len(y) or len(x) < 2:
            raise EditError(
                f"the branch turns {ops.shape_str(x)} into {ops.shape_str(y)}: a shortcut can "
                "only bridge feature maps of the same rank"
            )
        strides = []
        for a, b in zip(x[1:], y[1:], strict=True):
            if b > a or a % b:
                raise EditError(
                    f"the branch turns {ops.shape_str(x)} into {ops.shape_str(y)}; a 1x1 "
                    "projection can only shrink the size by a whole stride"
                )
            strides.append(a // b)
        stride = strides[0] if len(set(strides)) == 1 else strides
        conv = Node(
            w.fresh(group, "downsample"),
            "conv2d" if len(x) == 3 else "conv1d",
            {
                "in_channels": int(x[0]),
                "out_channels": int(y[0]),
                "kernel_size": 1,
                "stride": stride,
                "bias": False,
            },
            [src],
            group,
        )
        conv.module_path = conv.name
        w.add(conv, before=before)
        bn = Node(
            w.fresh(group, "downsample_bn"),
            "batch_norm2d" if len(x) == 3 else "batch_norm1d",
            {"num_features": int(y[0])},
            [conv.name],
            group,
        )
        bn.module_path = bn.name
        w.add(bn, before=before)
        return bn.name
