"""The architecture graph: the one representation every part of cnnviz reads and edits.

An :class:`ArchGraph` is a set of named :class:`Node` objects, each with an operation kind from
the registry in :mod:`cnnviz.core.ops`, plain-JSON hyper-parameters, ordered inputs (the edges)
and a group path giving the module hierarchy. It is deliberately plain Python (no networkx in the
hot path) so that a 700-node DenseNet is analysed in milliseconds.
"""

from __future__ import annotations

import copy as _copy
import json
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cnnviz.errors import CnnvizError

SCHEMA_VERSION = 1
"""Version of the JSON layout written by :meth:`ArchGraph.to_dict`."""

Shape = tuple[int, ...]


class GraphFormatError(CnnvizError):
    """An architecture file (or dict) is malformed or from a newer cnnviz."""


@dataclass(frozen=True)
class Issue:
    """One problem found by :meth:`ArchGraph.validate`.

    Attributes:
        node: Name of the node at fault ("" for graph-wide problems).
        message: What is wrong, in words a user can act on.
    """

    node: str
    message: str

    def __str__(self) -> str:
        return f"{self.node}: {self.message}" if self.node else self.message


@dataclass
class Node:
    """One operation of the graph.

    Attributes:
        name: Unique id. Module nodes use the qualified module name (``layer2.0.conv1``),
            function nodes a name such as ``add_3``.
        kind: Operation kind from the registry, ``"input"`` or ``"opaque"``.
        params: Hyper-parameters, plain JSON values only.
        inputs: Names of the input nodes, in argument order.
        group: Module path of the container (``layer2.0``), ``""`` at top level.
        module_path: For module nodes, the attribute path of the module in the built model
            (equal to ``name`` unless one module is called more than once); None for functions.
        frozen: True when the node's parameters are not trained (``requires_grad=False``).
        training_only: True when the node runs only in training mode (an auxiliary classifier
            of GoogLeNet, say): the built model skips it in eval mode.
        module: Opaque nodes only: the kept ``nn.Module`` or callable (not serialised).
        measured_shape: Opaque nodes only: the output shape (without batch) measured at import.
    """

    name: str
    kind: str
    params: dict[str, Any] = field(default_factory=dict)
    inputs: list[str] = field(default_factory=list)
    group: str = ""
    module_path: str | None = None
    frozen: bool = False
    training_only: bool = False
    module: Any = field(default=None, repr=False, compare=False)
    measured_shape: Any = field(default=None, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """The node as plain JSON values (the kept module is left out)."""
        d: dict[str, Any] = {
            "name": self.name,
            "kind": self.kind,
            "params": _jsonable(self.params),
            "inputs": list(self.inputs),
            "group": self.group,
        }
        if self.module_path is not None:
            d["module_path"] = self.module_path
        if self.frozen:
            d["frozen"] = True
        if self.training_only:
            d["training_only"] = True
        if self.measured_shape is not None:
            d["measured_shape"] = _jsonable(self.measured_shape)
        return d


def _jsonable(value: Any) -> Any:
    """Tuples become lists so that a loaded graph equals the one saved."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def _check_plain_json(value: Any, where: str) -> str | None:
    """The path to the first non-JSON value inside ``value``, or None when all is plain."""
    if value is None or isinstance(value, (bool, int, str)):
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else f"{where} is {value}, not a finite number"
    if isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            bad = _check_plain_json(v, f"{where}[{i}]")
            if bad:
                return bad
        return None
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                return f"{where} has a non-string key {k!r}"
            bad = _check_plain_json(v, f"{where}.{k}")
            if bad:
                return bad
        return None
    return f"{where} is a {type(value).__name__}, not a plain JSON value"


class ArchGraph:
    """A network architecture as nodes with ordered input edges.

    Nodes are kept in insertion order, which for traced and built graphs is an execution order;
    :meth:`topological_order` does not rely on it.

    Attributes:
        name: Model name shown to the user.
        outputs: Names of the output nodes, in order.
        aux_outputs: Names of extra outputs returned only in training mode, after ``outputs``
            (auxiliary logits whose losses training adds). Names of nodes an edit deleted are
            ignored (see :meth:`live_aux_outputs`), so that undo brings them back.
        notes: Remarks for the user made at import (e.g. why a fallback was used).
    """

    def __init__(self, name: str = "model") -> None:
        self.name = name
        self._nodes: dict[str, Node] = {}
        self.outputs: list[str] = []
        self.aux_outputs: list[str] = []
        self.notes: list[str] = []

    # ----------------------------------------------------------------- building
    def add_node(self, node: Node) -> Node:
        """Add ``node``; its name must be new.

        Raises:
            ValueError: A node with that name exists already.
        """
        if node.name in self._nodes:
            raise ValueError(f"a node named {node.name!r} exists already")
        self._nodes[node.name] = node
        return node

    def add(
        self,
        name: str,
        kind: str,
        inputs: Iterable[str] = (),
        group: str = "",
        **params: Any,
    ) -> Node:
        """Convenience: create and add a node; keyword arguments are its parameters."""
        return self.add_node(
            Node(name=name, kind=kind, params=params, inputs=list(inputs), group=group)
        )

    def add_input(self, name: str = "input", shape: Iterable[int] = (3, 224, 224)) -> Node:
        """Add an input node taking tensors of ``shape`` (without batch dimension)."""
        return self.add_node(
            Node(name=name, kind="input", params={"shape": [int(s) for s in shape]})
        )

    def remove_node(self, name: str) -> None:
        """Remove a node (edges that point at it stay and are reported by :meth:`validate`)."""
        del self._nodes[name]
        self.outputs = [o for o in self.outputs if o != name]

    # ------------------------------------------------------------------ access
    @property
    def nodes(self) -> dict[str, Node]:
        """The nodes by name, in insertion order (treat as read-only; use add/remove)."""
        return self._nodes

    def __getitem__(self, name: str) -> Node:
        return self._nodes[name]

    def __contains__(self, name: object) -> bool:
        return name in self._nodes

    def __iter__(self) -> Iterator[Node]:
        return iter(self._nodes.values())

    def __len__(self) -> int:
        return len(self._nodes)

    def live_aux_outputs(self) -> list[str]:
        """The entries of ``aux_outputs`` that name a node, in order."""
        return [o for o in self.aux_outputs if o in self._nodes]

    @property
    def input_nodes(self) -> list[str]:
        """Names of the ``input`` nodes, in insertion order."""
        return [n.name for n in self._nodes.values() if n.kind == "input"]

    @property
    def input_shape(self) -> Shape | None:
        """Shape (C,H,W) of the first input node, or None without one."""
        for n in self._nodes.values():
            if n.kind == "input":
                return tuple(int(s) for s in n.params.get("shape", ()))
        return None

    @input_shape.setter
    def input_shape(self, shape: Iterable[int]) -> None:
        for n in self._nodes.values():
            if n.kind == "input":
                n.params["shape"] = [int(s) for s in shape]
                return
        raise ValueError("the graph has no input node")

    def successors(self, name: str) -> list[str]:
        """Nodes that take ``name`` as an input, in graph order (each once)."""
        return [n.name for n in self._nodes.values() if name in n.inputs]

    def successor_map(self) -> dict[str, list[str]]:
        """All successor lists at once (linear time; use this in loops)."""
        succ: dict[str, list[str]] = {n: [] for n in self._nodes}
        for n in self._nodes.values():
            for i in dict.fromkeys(n.inputs):
                if i in succ:
                    succ[i].append(n.name)
        return succ

    def predecessors(self, name: str) -> list[str]:
        """The inputs of ``name``, in argument order."""
        return list(self._nodes[name].inputs)

    def topological_order(self) -> list[str]:
        """Node names such that every node comes after its inputs.

        Ties keep insertion order, so a traced graph keeps its execution order.

        Raises:
            ValueError: The graph has a cycle (naming nodes on it).
        """
        order, cyclic = self._topo()
        if cyclic:
            raise ValueError(f"the graph has a cycle through {', '.join(cyclic[:5])}")
        return order

    def _topo(self) -> tuple[list[str], list[str]]:
        nodes = self._nodes
        # Fast path: insertion order is usually already topological.
        seen: set[str] = set()
        ok = True
        for n in nodes.values():
            for i in n.inputs:
                if i in nodes and i not in seen:
                    ok = False
                    break
            if not ok:
                break
            seen.add(n.name)
        if ok:
            return list(nodes), []
        indeg = {name: 0 for name in nodes}
        succ = self.successor_map()
        for n in nodes.values():
            indeg[n.name] = len({i for i in n.inputs if i in nodes})
        position = {name: k for k, name in enumerate(nodes)}
        import heapq

        ready = [(position[n], n) for n, d in indeg.items() if d == 0]
        heapq.heapify(ready)
        order: list[str] = []
        while ready:
            _, name = heapq.heappop(ready)
            order.append(name)
            for s in succ[name]:
                indeg[s] -= 1
                if indeg[s] == 0:
                    heapq.heappush(ready, (position[s], s))
        cyclic = [n for n in nodes if indeg[n] > 0]
        return order, cyclic

    def groups(self) -> list[str]:
        """All group paths used by nodes, with their ancestors, parents before children."""
        found: dict[str, None] = {}
        for n in self._nodes.values():
            if not n.group:
                continue
            parts = n.group.split(".")
            for k in range(1, len(parts) + 1):
                found.setdefault(".".join(parts[:k]), None)
        return list(found)

    def nodes_in_group(self, group: str, recursive: bool = True) -> list[str]:
        """Names of nodes in ``group`` ("" is the whole graph), optionally with subgroups."""
        if group == "":
            return list(self._nodes) if recursive else [n.name for n in self if not n.group]
        prefix = group + "."
        return [
            n.name
            for n in self._nodes.values()
            if n.group == group or (recursive and n.group.startswith(prefix))
        ]

    # ------------------------------------------------------------------ checks
    def validate(self) -> list[Issue]:
        """Every structural or parameter problem, each naming its node; empty when valid.

        Checks: unknown kinds, inputs that do not exist, wrong number of inputs, cycles,
        parameters that are missing, unknown, of the wrong type or out of bounds, outputs that
        name no node, and the absence of an input node.
        """
        from cnnviz.core import ops

        issues: list[Issue] = []
        if not any(n.kind == "input" for n in self._nodes.values()):
            issues.append(Issue("", "the graph has no input node"))
        for n in self._nodes.values():
            for i in n.inputs:
                if i not in self._nodes:
                    issues.append(Issue(n.name, f"input {i!r} does not exist"))
            bad = _check_plain_json(n.params, "params")
            if bad:
                issues.append(Issue(n.name, bad))
                continue
            if n.kind == "opaque":
                continue
            spec = ops.REGISTRY.get(n.kind)
            if spec is None:
                close = ops.suggest_kinds(n.kind)
                hint = f"; did you mean {', '.join(close)}?" if close else ""
                issues.append(Issue(n.name, f"unknown kind {n.kind!r}{hint}"))
                continue
            lo, hi = spec.arity
            if len(n.inputs) < lo or (hi is not None and len(n.inputs) > hi):
                want = f"{lo}" if hi == lo else f"{lo} or more" if hi is None else f"{lo} to {hi}"
                issues.append(Issue(n.name, f"{n.kind} takes {want} inputs, got {len(n.inputs)}"))
            for problem in ops.check_params(n.kind, n.params):
                issues.append(Issue(n.name, problem))
        _, cyclic = self._topo()
        if cyclic:
            issues.append(Issue(cyclic[0], f"cycle through {', '.join(cyclic[:5])}"))
        for o in self.outputs:
            if o not in self._nodes:
                issues.append(Issue("", f"output {o!r} names no node"))
        return issues

    def set_nodes(self, nodes: Iterable[Node], outputs: Iterable[str] | None = None) -> None:
        """Replace every node at once, in the given order (undo and redo restore states so).

        Args:
            nodes: The new nodes; their names must be unique.
            outputs: New output names; unchanged when None.

        Raises:
            ValueError: Two nodes share a name.
        """
        new: dict[str, Node] = {}
        for n in nodes:
            if n.name in new:
                raise ValueError(f"a node named {n.name!r} appears twice")
            new[n.name] = n
        self._nodes = new
        if outputs is not None:
            self.outputs = list(outputs)

    # ----------------------------------------------------------- copy and equality
    def copy(self) -> ArchGraph:
        """A deep copy of structure and parameters; kept modules are shared, not copied."""
        g = ArchGraph(self.name)
        for n in self._nodes.values():
            g._nodes[n.name] = Node(
                name=n.name,
                kind=n.kind,
                params=_copy.deepcopy(n.params),
                inputs=list(n.inputs),
                group=n.group,
                module_path=n.module_path,
                frozen=n.frozen,
                training_only=n.training_only,
                module=n.module,
                measured_shape=n.measured_shape,
            )
        g.outputs = list(self.outputs)
        g.aux_outputs = list(self.aux_outputs)
        g.notes = list(self.notes)
        return g

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ArchGraph):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return f"ArchGraph({self.name!r}, {len(self._nodes)} nodes, input {self.input_shape})"

    # ------------------------------------------------------------ serialisation
    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values with ``schema_version``; kept modules are not serialised."""
        return {
            "schema_version": SCHEMA_VERSION,
            "name": self.name,
            "input_shape": list(self.input_shape) if self.input_shape else None,
            "outputs": list(self.outputs),
            **({"aux_outputs": self.live_aux_outputs()} if self.live_aux_outputs() else {}),
            "nodes": [n.to_dict() for n in self._nodes.values()],
            **({"notes": list(self.notes)} if self.notes else {}),
        }

    def to_json(self, indent: int | None = 1) -> str:
        """The graph as a JSON string."""
        return json.dumps(self.to_dict(), indent=indent)

    def save(self, path: str | Path) -> None:
        """Write the graph as a ``.json`` architecture file."""
        Path(path).write_text(self.to_json(), encoding="utf-8")

    @classmethod
    def from_dict(cls, data: Any, source: str = "the architecture data") -> ArchGraph:
        """Rebuild a graph from :meth:`to_dict` output.

        Raises:
            GraphFormatError: Newer schema, missing or mistyped fields, duplicate names.
        """
        if not isinstance(data, dict):
            raise GraphFormatError(f"{source}: expected a JSON object, got {type(data).__name__}")
        version = data.get("schema_version")
        if version is None:
            raise GraphFormatError(f"{source}: no 'schema_version' field; not a cnnviz file?")
        if not isinstance(version, int) or isinstance(version, bool):
            raise GraphFormatError(f"{source}: 'schema_version' must be an integer")
        if version > SCHEMA_VERSION:
            raise GraphFormatError(
                f"{source}: written by a newer cnnviz (schema_version {version}; this version "
                f"reads up to {SCHEMA_VERSION}); update cnnviz to open it"
            )
        if version < 1:
            raise GraphFormatError(f"{source}: schema_version {version} is not valid")
        name = data.get("name", "model")
        if not isinstance(name, str):
            raise GraphFormatError(f"{source}: 'name' must be a string")
        raw_nodes = data.get("nodes")
        if not isinstance(raw_nodes, list):
            raise GraphFormatError(f"{source}: 'nodes' must be a list of node objects")
        g = cls(name)
        for k, raw in enumerate(raw_nodes):
            where = f"{source}: node {k}"
            if not isinstance(raw, dict):
                raise GraphFormatError(f"{where} is not an object")
            for key, typ in (("name", str), ("kind", str)):
                if key not in raw:
                    raise GraphFormatError(f"{where} has no '{key}' field")
                if not isinstance(raw[key], typ):
                    raise GraphFormatError(f"{where}: '{key}' must be a string")
            where = f"{source}: node {raw['name']!r}"
            params = raw.get("params", {})
            if not isinstance(params, dict):
                raise GraphFormatError(f"{where}: 'params' must be an object")
            inputs = raw.get("inputs", [])
            if not isinstance(inputs, list) or not all(isinstance(i, str) for i in inputs):
                raise GraphFormatError(f"{where}: 'inputs' must be a list of node names")
            group = raw.get("group", "")
            if not isinstance(group, str):
                raise GraphFormatError(f"{where}: 'group' must be a string")
            module_path = raw.get("module_path")
            if module_path is not None and not isinstance(module_path, str):
                raise GraphFormatError(f"{where}: 'module_path' must be a string")
            if raw["name"] in g._nodes:
                raise GraphFormatError(f"{where} appears twice; node names must be unique")
            g._nodes[raw["name"]] = Node(
                name=raw["name"],
                kind=raw["kind"],
                params=params,
                inputs=inputs,
                group=group,
                module_path=module_path,
                frozen=bool(raw.get("frozen", False)),
                training_only=bool(raw.get("training_only", False)),
                measured_shape=_to_shape(raw.get("measured_shape")),
            )
        outputs = data.get("outputs", [])
        if not isinstance(outputs, list) or not all(isinstance(o, str) for o in outputs):
            raise GraphFormatError(f"{source}: 'outputs' must be a list of node names")
        g.outputs = outputs
        aux = data.get("aux_outputs", [])
        if not isinstance(aux, list) or not all(isinstance(o, str) for o in aux):
            raise GraphFormatError(f"{source}: 'aux_outputs' must be a list of node names")
        g.aux_outputs = aux
        notes = data.get("notes", [])
        if not isinstance(notes, list) or not all(isinstance(n, str) for n in notes):
            raise GraphFormatError(f"{source}: 'notes' must be a list of strings")
        g.notes = list(notes)
        return g

    @classmethod
    def from_json(cls, text: str, source: str = "the JSON text") -> ArchGraph:
        """Parse a JSON string written by :meth:`to_json`.

        Raises:
            GraphFormatError: Not JSON, or not a valid architecture.
        """
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise GraphFormatError(f"{source} is not valid JSON: {e}") from None
        return cls.from_dict(data, source)

    @classmethod
    def load(cls, path: str | Path) -> ArchGraph:
        """Read a ``.json`` architecture file.

        Raises:
            GraphFormatError: Unreadable, not JSON, or not a valid architecture.
        """
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise GraphFormatError(f"cannot read {path}: {e}") from None
        return cls.from_json(text, str(path))


def _to_shape(value: Any) -> Any:
    """JSON lists back to the tuples used for measured shapes (nested for tuple outputs)."""
    if isinstance(value, list):
        if all(isinstance(v, int) for v in value):
            return tuple(value)
        return [_to_shape(v) for v in value]
    return value
