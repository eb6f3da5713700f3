"""Readable PyTorch source from an :class:`~cnnviz.core.graph.ArchGraph`.

:func:`to_source` writes a Python module a person could have written: imports, one
``nn.Module`` class per distinct kind of group (``BasicBlock`` used by ``layer1.0`` and
``layer1.1``), ``nn.Sequential`` where a group is a plain chain, a ``forward`` in the usual
style (``x = self.conv1(x)``, ``out = out + identity``, ``torch.cat([a, b], 1)``) and a
``build_model()`` function. Submodules sit at the nodes' module paths, so the generated model's
``state_dict`` has the keys and shapes of :func:`~cnnviz.core.build.build_module` (and of the
model the graph was imported from): its weights load directly and give the same outputs.

Structure: every module path prefix is a *container*. A container whose nodes form a convex
piece of the data flow (nothing leaves it and comes back) gets a ``forward`` and is called as
one unit by its parent; any other container only holds submodules, and its nodes are written
into the nearest ancestor's ``forward``.

Opaque nodes (modules or functions cnnviz does not know) cannot always be written: a function
whose arguments are plain constants is called as it was (``F.pad(x, (0, 0, 0, 0, 0, 16))``);
otherwise the source contains a call to ``_opaque(...)`` that raises ``NotImplementedError``
naming the node and, where it is importable, the class to construct there.
"""

from __future__ import annotations

import keyword
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cnnviz.core import ops
from cnnviz.core.graph import ArchGraph, Node
from cnnviz.errors import CnnvizError

__all__ = ["CodegenError", "class_names_from_module", "to_source"]


class CodegenError(CnnvizError):
    """The graph cannot be written as source (it is invalid)."""


def class_names_from_module(module: Any) -> dict[str, str]:
    """``{module path: class name}`` of an ``nn.Module`` tree, to name the generated classes.

    Args:
        module: The model the graph was imported from (may live on the meta device).
    """
    return {path: type(m).__name__ for path, m in module.named_modules()}


# ------------------------------------------------------------------------------ rendering
def _lit(v: Any) -> str:
    """A Python literal for a plain parameter value (lists become tuples, as torch prints)."""
    if isinstance(v, (list, tuple)):
        items = [_lit(x) for x in v]
        return "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")"
    if isinstance(v, float):
        if math.isinf(v) or math.isnan(v):
            return f"float({str(v)!r})"
        return repr(v)
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k!r}: {_lit(x)}" for k, x in v.items()) + "}"
    return repr(v)


def _list_lit(v: Any) -> str:
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_lit(x) for x in v) + "]"
    return _lit(v)


# kind -> (constructor, positional parameter names)
_CTORS: dict[str, tuple[str, tuple[str, ...]]] = {
    "conv1d": ("nn.Conv1d", ("in_channels", "out_channels", "kernel_size")),
    "conv2d": ("nn.Conv2d", ("in_channels", "out_channels", "kernel_size")),
    "conv3d": ("nn.Conv3d", ("in_channels", "out_channels", "kernel_size")),
    "conv_transpose1d": ("nn.ConvTranspose1d", ("in_channels", "out_channels", "kernel_size")),
    "conv_transpose2d": ("nn.ConvTranspose2d", ("in_channels", "out_channels", "kernel_size")),
    "linear": ("nn.Linear", ("in_features", "out_features")),
    "max_pool1d": ("nn.MaxPool1d", ("kernel_size",)),
    "max_pool2d": ("nn.MaxPool2d", ("kernel_size",)),
    "avg_pool1d": ("nn.AvgPool1d", ("kernel_size",)),
    "avg_pool2d": ("nn.AvgPool2d", ("kernel_size",)),
    "adaptive_avg_pool1d": ("nn.AdaptiveAvgPool1d", ("output_size",)),
    "adaptive_max_pool1d": ("nn.AdaptiveMaxPool1d", ("output_size",)),
    "adaptive_avg_pool2d": ("nn.AdaptiveAvgPool2d", ("output_size",)),
    "adaptive_max_pool2d": ("nn.AdaptiveMaxPool2d", ("output_size",)),
    "max_unpool2d": ("nn.MaxUnpool2d", ("kernel_size",)),
    "upsample": ("nn.Upsample", ()),
    "zero_pad2d": ("nn.ZeroPad2d", ("padding",)),
    "batch_norm1d": ("nn.BatchNorm1d", ("num_features",)),
    "batch_norm2d": ("nn.BatchNorm2d", ("num_features",)),
    "instance_norm2d": ("nn.InstanceNorm2d", ("num_features",)),
    "group_norm": ("nn.GroupNorm", ("num_groups", "num_channels")),
    "layer_norm": ("nn.LayerNorm", ("normalized_shape",)),
    "layer_norm2d": ("LayerNorm2d", ("num_channels",)),
    "local_response_norm": ("nn.LocalResponseNorm", ("size",)),
    "relu": ("nn.ReLU", ()),
    "relu6": ("nn.ReLU6", ()),
    "leaky_relu": ("nn.LeakyReLU", ()),
    "elu": ("nn.ELU", ()),
    "gelu": ("nn.GELU", ()),
    "silu": ("nn.SiLU", ()),
    "sigmoid": ("nn.Sigmoid", ()),
    "tanh": ("nn.Tanh", ()),
    "hardswish": ("nn.Hardswish", ()),
    "hardsigmoid": ("nn.Hardsigmoid", ()),
    "mish": ("nn.Mish", ()),
    "softplus": ("nn.Softplus", ()),
    "identity": ("nn.Identity", ()),
    "dropout": ("nn.Dropout", ()),
    "dropout2d": ("nn.Dropout2d", ()),
    "stochastic_depth": ("StochasticDepth", ("p", "mode")),
    "softmax": ("nn.Softmax", ()),
    "log_softmax": ("nn.LogSoftmax", ()),
    "flatten": ("nn.Flatten", ()),
    "channel_shuffle": ("nn.ChannelShuffle", ()),
    "global_avg_pool2d": ("nn.AdaptiveAvgPool2d", ()),
    "global_max_pool2d": ("nn.AdaptiveMaxPool2d", ()),
}
# Kinds with no state that read better as an expression than as a submodule.
_EXPRESSION_KINDS = frozenset(
    {"add", "mul", "cat", "reshape", "permute", "transpose", "mean", "chunk", "getitem"}
)

_LAYER_NORM_2D = '''

class LayerNorm2d(nn.LayerNorm):
    """Layer norm over the channels at each position of an (N, C, H, W) tensor."""

    def __init__(self, num_channels: int, eps: float = 1e-6, elementwise_affine: bool = True):
        super().__init__(num_channels, eps=eps, elementwise_affine=elementwise_affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)
'''

_OPAQUE_HELPER = '''

def _opaque(node: str, what: str) -> nn.Module:
    """A part cnnviz could not write as source: replace this call by hand."""
    raise NotImplementedError(f"{node}: {what} cannot be written as source; construct it here")
'''


def _ctor(node: Node) -> str:
    """Constructor expression of a module node, non-default parameters only."""
    kind = node.kind
    spec = ops.REGISTRY[kind]
    p = spec.defaults()
    p.update(node.params)
    if kind in ("global_avg_pool2d", "global_max_pool2d"):
        return f"{_CTORS[kind][0]}(1)"
    ctor, positional = _CTORS[kind]
    args = [_lit(p[name]) for name in positional if name in p]
    defaults = spec.defaults()
    for ps in spec.params:
        if ps.name in positional or ps.name not in node.params:
            continue
        v = node.params[ps.name]
        if ps.name in defaults and _same(v, defaults[ps.name]):
            continue
        if kind == "upsample" and ps.name == "scale_factor" and p.get("size") is not None:
            continue
        args.append(f"{ps.name}={_lit(v)}")
    return f"{ctor}({', '.join(args)})"


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (list, tuple)) and not isinstance(b, (list, tuple)):
        return all(x == b for x in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return list(a) == list(b)
    return a == b and type(a) is type(b) or (isinstance(a, float) and a == b)


def _sample_dim(d: int) -> str:
    return str(d)


def _function_expr(node: Node, args: list[str]) -> str | None:
    """Expression for a node written as a function (no submodule), or None."""
    kind = node.kind
    p = ops.REGISTRY[kind].defaults() if kind in ops.REGISTRY else {}
    p.update(node.params)
    x = args[0] if args else "None"
    if kind in ("add", "mul"):
        op = " + " if kind == "add" else " * "
        terms = list(args) + ([_lit(p["scalar"])] if p.get("scalar") is not None else [])
        return op.join(terms)
    if kind == "cat":
        return f"torch.cat([{', '.join(args)}], {p.get('dim', 1)})"
    if kind == "flatten":
        end = p.get("end_dim", -1)
        return f"torch.flatten({x}, {p.get('start_dim', 1)}" + (f", {end})" if end != -1 else ")")
    if kind == "getitem":
        return f"{x}[{p.get('index', 0)}]"
    if kind == "chunk":
        return f"{x}.chunk({p.get('chunks', 2)}, {p.get('dim', 1)})"
    if kind == "reshape":
        return f"{x}.reshape({x}.shape[0], {', '.join(str(s) for s in p['shape'])})"
    if kind == "permute":
        return f"{x}.permute({', '.join(str(d) for d in p['dims'])})"
    if kind == "transpose":
        return f"{x}.transpose({p['dim0']}, {p['dim1']})"
    if kind == "mean":
        keep = ", keepdim=True" if p.get("keepdim") else ""
        return f"{x}.mean({_list_lit(p['dim'])}{keep})"
    if kind == "identity":
        return x
    simple = {
        "relu": "F.relu",
        "relu6": "F.relu6",
        "silu": "F.silu",
        "sigmoid": "torch.sigmoid",
        "tanh": "torch.tanh",
        "hardswish": "F.hardswish",
        "hardsigmoid": "F.hardsigmoid",
        "mish": "F.mish",
    }
    if kind in simple:
        return f"{simple[kind]}({x})"
    if kind in ("softmax", "log_softmax"):
        return f"F.{kind}({x}, dim={p.get('dim', 1)})"
    if kind in ("global_avg_pool2d", "global_max_pool2d"):
        how = "avg" if "avg" in kind else "max"
        return f"F.adaptive_{how}_pool2d({x}, 1)"
    if kind in ("dropout", "dropout2d"):
        return f"F.{kind}({x}, p={p.get('p', 0.5)}, training=self.training)"
    if kind == "pad":
        extra = "".join(
            f", {k}={_lit(p[k])}"
            for k, d in (("mode", "constant"), ("value", 0.0))
            if k in p and not _same(p[k], d)
        )
        return f"F.pad({x}, {_lit(p.get('pad', [1, 1, 1, 1]))}{extra})"
    if kind in _CTORS:
        # Stateless module used as a function: construct it on the spot.
        return f"{_ctor(node)}({', '.join(args)})"
    return None


def _registry_ctor(node: Node) -> str:
    """Fallback for kinds without a hand-written form: cnnviz's own builder."""
    return f"_cnnviz_ops.get({node.kind!r}).build({_lit(dict(node.params))})"


# ---------------------------------------------------------------------------- structure
def _parent(path: str) -> str:
    return path.rpartition(".")[0]


def _leaf(path: str) -> str:
    return path.rpartition(".")[2]


def _is_ident(name: str) -> bool:
    return name.isidentifier() and not keyword.iskeyword(name)


def _camel(text: str) -> str:
    parts = re.split(r"[^0-9A-Za-z]+", text)
    name = "".join(p[:1].upper() + p[1:] for p in parts if p)
    if not name or not name[0].isalpha():
        name = "Block" + name
    return name


@dataclass
class _Container:
    path: str
    children: list[str] = field(default_factory=list)  # leaf names, in first-use order
    sub: dict[str, _Container] = field(default_factory=dict)
    modules: dict[str, Node] = field(default_factory=dict)  # leaf -> first node using it
    members: set[str] = field(default_factory=set)  # node names, recursively
    callable: bool = False
    kind: str = "class"  # class | sequential | modulelist
    class_name: str = ""
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)


class _Writer:
    def __init__(self, graph: ArchGraph, class_names: Mapping[str, str], model_name: str | None):
        issues = [i for i in graph.validate() if "opaque" not in i.message]
        if issues:
            raise CodegenError(
                f"{graph.name} cannot be written as source: "
                + "; ".join(str(i) for i in issues[:3])
            )
        self.g = graph
        self.class_names = dict(class_names)
        self.model_name = model_name
        self.order = graph.topological_order()
        self.pos = {n: k for k, n in enumerate(self.order)}
        self.succ = graph.successor_map()
        self.outputs = list(graph.outputs) or [self.order[-1]]
        self.aux_outputs = graph.live_aux_outputs()
        self.training_only = {n.name for n in graph if n.training_only}
        self.uses_layer_norm_2d = False
        self.uses_stochastic_depth = False
        self.uses_opaque = False
        self.uses_registry = False
        self.imports: dict[str, None] = {}
        self.root = _Container("")
        self.containers: dict[str, _Container] = {"": self.root}
        self.owner: dict[str, str] = {}
        self.classes: list[tuple[str, str]] = []
        self.class_users: dict[str, list[str]] = {}
        self.class_by_body: dict[str, str] = {}
        self.used_class_names: set[str] = {"LayerNorm2d", "StochasticDepth"}

    # -- containers
    def container(self, path: str) -> _Container:
        c = self.containers.get(path)
        if c is None:
            c = _Container(path)
            self.containers[path] = c
            parent = self.container(_parent(path))
            leaf = _leaf(path)
            parent.sub[leaf] = c
            if leaf not in parent.children:
                parent.children.append(leaf)
        return c

    def build_tree(self) -> None:
        for name in self.order:
            node = self.g[name]
            if node.kind == "input":
                self.owner[name] = ""
                continue
            if node.module_path and self._is_module(node):
                owner = _parent(node.module_path)
                c = self.container(owner)
                leaf = _leaf(node.module_path)
                if leaf not in c.modules and leaf not in c.sub:
                    c.modules[leaf] = node
                    c.children.append(leaf)
            else:
                owner = node.group
                self.container(owner)
            self.owner[name] = owner
        for name, owner in self.owner.items():
            path = owner
            while True:
                self.containers[path].members.add(name)
                if not path:
                    break
                path = _parent(path)

    def _is_module(self, node: Node) -> bool:
        """True when the node's module is a submodule in the source (has weights or a ctor)."""
        if node.kind == "opaque":
            return isinstance(node.params.get("type"), str)
        if node.kind == "parameter" or node.kind in _CTORS:
            return True
        if node.kind in _EXPRESSION_KINDS or node.kind in ("pad", "input"):
            return False
        return self._has_state(node)

    def _has_state(self, node: Node) -> bool:
        """True for a kind unknown to this writer whose module holds weights or buffers."""
        try:
            spec = ops.REGISTRY[node.kind]
            m = spec.build(spec.resolve(node.params))
        except Exception:  # noqa: BLE001 - an unbuildable node is reported by validate
            return False
        return any(True for _ in m.parameters()) or any(True for _ in m.buffers())

    # -- convexity and interfaces
    def analyse_containers(self) -> None:
        for c in sorted(self.containers.values(), key=lambda c: -c.path.count(".")):
            if not c.path:
                c.callable = True
                c.inputs = [n for n in self.order if self.g[n].kind == "input"]
                c.outputs = list(self.outputs)
                continue
            members = c.members
            if not members:
                continue
            ext_in: dict[str, None] = {}
            outs: dict[str, None] = {}
            for n in self.order:
                if n not in members:
                    continue
                for i in self.g[n].inputs:
                    if i not in members:
                        ext_in[i] = None
                if (
                    n in self.outputs
                    or n in self.aux_outputs
                    or any(s not in members for s in self.succ[n])
                ):
                    outs[n] = None
            c.inputs, c.outputs = list(ext_in), list(outs)
            # A block mixing training-only and other nodes runs inline in its parent's forward,
            # where the training-only ones are guarded by ``if self.training:``.
            mixed = not members.isdisjoint(self.training_only) and not members <= self.training_only
            c.callable = (
                bool(outs)
                and not mixed
                and self._convex(members)
                and not any(self.g[n].kind == "input" for n in members)
            )

    def _convex(self, members: set[str]) -> bool:
        tainted: set[str] = set()
        first = min(self.pos[n] for n in members)
        last = max(self.pos[n] for n in members)
        for n in self.order[first : last + 1]:
            ins = self.g[n].inputs
            if n in members:
                if any(i in tainted for i in ins):
                    return False
            elif any(i in members or i in tainted for i in ins):
                tainted.add(n)
        return True

    def exec_container(self, owner: str) -> _Container:
        path = owner
        while not self.containers[path].callable:
            path = _parent(path)
        return self.containers[path]

    # -- units of a forward
    def units(self, c: _Container) -> list[tuple[str, Any]]:
        """("node", name) and ("call", container) items run by ``c``'s forward, in order."""
        items: dict[str, tuple[str, Any]] = {}
        unit_of: dict[str, str] = {}
        for n in self.order:
            if n not in c.members or self.g[n].kind == "input":
                continue
            owner = self.owner[n]
            # the outermost callable container strictly inside c that holds n
            path, top = owner, None
            while path != c.path:
                if self.containers[path].callable:
                    top = path
                path = _parent(path)
            if top is None:
                key = f"node:{n}"
                items[key] = ("node", n)
            else:
                key = f"call:{top}"
                items.setdefault(key, ("call", self.containers[top]))
            unit_of[n] = key
        # topological order of units, ties by first position
        deps: dict[str, set[str]] = {k: set() for k in items}
        first: dict[str, int] = {}
        for n, key in unit_of.items():
            first[key] = min(first.get(key, self.pos[n]), self.pos[n])
            for i in self.g[n].inputs:
                other = unit_of.get(i)
                if other is not None and other != key:
                    deps[key].add(other)
        done: list[str] = []
        placed: set[str] = set()
        pending = sorted(items, key=lambda k: first[k])
        while pending:
            for k in pending:
                if deps[k] <= placed:
                    done.append(k)
                    placed.add(k)
                    pending.remove(k)
                    break
            else:  # pragma: no cover - convex units cannot form a cycle
                raise CodegenError("the groups of this graph depend on each other in a cycle")
        return [items[k] for k in done]

    # -- sequential detection
    def classify(self, c: _Container) -> None:
        if not c.path or not c.children or not all(ch.isdigit() for ch in c.children):
            c.kind = "class"
            return
        if sorted(int(ch) for ch in c.children) != list(range(len(c.children))):
            c.kind = "class"
            return
        c.kind = "modulelist"
        if not c.callable or len(c.inputs) != 1 or len(c.outputs) != 1:
            c.callable = False
            return
        units = self.units(c)
        if len(units) != len(c.children):
            c.callable = False
            return
        prev = c.inputs[0]
        for k, (how, what) in enumerate(units):
            if how == "node":
                node = self.g[what]
                if not node.module_path or _leaf(node.module_path) != str(k):
                    c.callable = False
                    return
                if node.inputs != [prev] or not self._is_module(node):
                    c.callable = False
                    return
                prev = what
            else:
                if what.path != f"{c.path}.{k}" or what.inputs != [prev] or len(what.outputs) != 1:
                    c.callable = False
                    return
                prev = what.outputs[0]
        if prev != c.outputs[0]:
            c.callable = False
            return
        c.kind = "sequential"

    # -- access paths
    def access(self, start: _Container, path: str) -> str:
        """``self.a.b[0]``-style expression for submodule ``path`` seen from ``start``."""
        rel = path[len(start.path) + 1 :] if start.path else path
        expr = "self"
        cur = start
        for part in rel.split("."):
            if cur.kind in ("sequential", "modulelist") and part.isdigit():
                expr += f"[{part}]"
            elif _is_ident(part):
                expr += f".{part}"
            else:
                expr += f".get_submodule({part!r})"
            nxt = cur.sub.get(part)
            if nxt is None:
                break
            cur = nxt
        return expr

    # -- emission
    def child_expr(self, c: _Container, leaf: str) -> str:
        if leaf in c.sub:
            return self.instance_expr(c.sub[leaf])
        node = c.modules[leaf]
        return self.module_ctor(node)

    def module_ctor(self, node: Node) -> str:
        if node.kind == "opaque":
            self.uses_opaque = True
            what = node.params.get("type", "module")
            return f"_opaque({node.name!r}, 'an opaque {what}')"
        if node.kind == "layer_norm2d":
            self.uses_layer_norm_2d = True
        if node.kind == "stochastic_depth":
            self.uses_stochastic_depth = True
        if node.kind not in _CTORS:
            self.uses_registry = True
            return _registry_ctor(node)
        return _ctor(node)

    def instance_expr(self, c: _Container) -> str:
        if c.kind == "sequential":
            inner = ", ".join(self.child_expr(c, ch) for ch in c.children)
            return f"nn.Sequential({inner})"
        if c.kind == "modulelist":
            inner = ", ".join(self.child_expr(c, ch) for ch in c.children)
            return f"nn.ModuleList([{inner}])"
        return f"{self.class_of(c)}()"

    def class_of(self, c: _Container) -> str:
        if c.class_name:
            return c.class_name
        body = self.class_body(c)
        if body in self.class_by_body:
            c.class_name = self.class_by_body[body]
            self.class_users[c.class_name].append(c.path)
            return c.class_name
        base = self.class_names.get(c.path) or (
            _camel(self.model_name or self.g.name) if not c.path else self._derived_name(c.path)
        )
        if base in ("Sequential", "ModuleList", "ModuleDict", "Module"):
            base = self._derived_name(c.path) if c.path else _camel(self.g.name)
        if base in ("nn", "F", "torch", "math") or not _is_ident(base):
            base = _camel(base) + "Module"
        name, k = base, 2
        while name in self.used_class_names:
            name = f"{base}{k}"
            k += 1
        self.used_class_names.add(name)
        c.class_name = name
        self.class_by_body[body] = name
        self.class_users[name] = [c.path]
        self.classes.append((name, body))
        return name

    @staticmethod
    def _derived_name(path: str) -> str:
        parts = path.split(".")
        words = [p for p in parts if not p.isdigit()]
        base = _camel(words[-1]) if words else "Block"
        if parts[-1].isdigit():
            base += "Block"
        return base

    def class_body(self, c: _Container) -> str:
        lines = ["    def __init__(self) -> None:", "        super().__init__()"]
        for leaf in c.children:
            if leaf in c.modules and c.modules[leaf].kind == "parameter":
                node = c.modules[leaf]
                p = ops.get("parameter").defaults()
                p.update(node.params)
                value = f"torch.full({_lit(tuple(p['shape']))}, {float(p.get('fill', 0.0))!r})"
                if p.get("trainable", True):
                    stmt = f"nn.Parameter({value})"
                    if _is_ident(leaf):
                        lines.append(f"        self.{leaf} = {stmt}")
                    else:
                        lines.append(f"        self.register_parameter({leaf!r}, {stmt})")
                else:
                    lines.append(f"        self.register_buffer({leaf!r}, {value})")
                continue
            expr = self.child_expr(c, leaf)
            if _is_ident(leaf):
                lines.append(f"        self.{leaf} = {expr}")
            else:
                lines.append(f"        self.add_module({leaf!r}, {expr})")
        if c.callable:
            lines += [""] + self.forward(c)
        return "\n".join(lines)

    # -- forward
    def forward(self, c: _Container) -> list[str]:
        units = self.units(c)
        # last use of every value inside this forward
        last_use: dict[str, int] = {}
        for k, (how, what) in enumerate(units):
            reads = self.g[what].inputs if how == "node" else what.inputs
            for i in reads:
                last_use[i] = k
        aux = self.aux_outputs if not c.path else []
        for o in (*c.outputs, *aux):
            last_use[o] = len(units)
        # Guard the training-only units, unless this whole block is training-only.
        guard = self.training_only and not c.members <= self.training_only
        in_guard = False
        var: dict[str, str] = {}
        taken: set[str] = {"self"}
        params = []
        for k, i in enumerate(c.inputs):
            name = "x" if len(c.inputs) == 1 else (f"x{k}" if k else "x")
            var[i] = name
            taken.add(name)
            params.append(f"{name}: torch.Tensor")
        holder: dict[str, str] = {v: i for i, v in var.items()}  # variable -> value held
        body: list[str] = []

        def fresh(hint: str) -> str:
            for cand in (hint, "out", "y"):
                if cand not in taken and _is_ident(cand):
                    taken.add(cand)
                    return cand
            k = 2
            while f"out{k}" in taken:
                k += 1
            taken.add(f"out{k}")
            return f"out{k}"

        for k, (how, what) in enumerate(units):
            reads = self.g[what].inputs if how == "node" else what.inputs
            args = [var[i] for i in reads]
            if how == "node":
                expr = self.node_expr(c, self.g[what], args)
                produced = [what]
                hint = self._hint(what)
                t_only = guard and what in self.training_only
            else:
                expr = f"{self.access(c, what.path)}({', '.join(args)})"
                produced = list(what.outputs)
                hint = self._hint(what.path)
                t_only = guard and what.members <= self.training_only
                if t_only and _is_ident(_leaf(what.path)):
                    hint = _leaf(what.path)
            # reuse a variable whose value dies here (first input first)
            free = [var[i] for i in dict.fromkeys(reads) if last_use.get(i) == k]
            targets = []
            for v in produced:
                if free:
                    name = free.pop(0)
                else:
                    name = fresh(hint if len(produced) == 1 else f"{hint}{len(targets)}")
                targets.append(name)
                var[v] = name
                holder[name] = v
            if t_only and not in_guard:
                body.append("        if self.training:")
            in_guard = t_only
            body.append(f"{'    ' if t_only else ''}        {', '.join(targets)} = {expr}")
        rets = [var[o] for o in c.outputs]
        ret = ", ".join(rets)
        annot = "torch.Tensor" if len(rets) == 1 else "tuple[torch.Tensor, ...]"
        if aux:
            body.append("        if self.training:")
            body.append(f"            return {', '.join([*rets, *(var[o] for o in aux)])}")
            annot = f"{annot} | tuple[torch.Tensor, ...]" if len(rets) == 1 else annot
        return [
            f"    def forward(self, {', '.join(params)}) -> {annot}:",
            *body,
            f"        return {ret}",
        ]

    def _hint(self, path: str) -> str:
        leaf = _leaf(path).lower()
        if "downsample" in leaf or "shortcut" in leaf or leaf.startswith("proj"):
            return "identity"
        return "out"

    def node_expr(self, c: _Container, node: Node, args: list[str]) -> str:
        if node.kind == "parameter":
            return self.access(c, node.module_path or node.name)
        if node.kind == "opaque":
            return self.opaque_expr(c, node, args)
        if node.module_path and self._is_module(node):
            return f"{self.access(c, node.module_path)}({', '.join(args)})"
        expr = _function_expr(node, args)
        if expr is None:
            self.uses_registry = True
            expr = f"{_registry_ctor(node)}({', '.join(args)})"
        if node.kind == "stochastic_depth":
            self.uses_stochastic_depth = True
        if node.kind == "layer_norm2d":
            self.uses_layer_norm_2d = True
        return expr

    def opaque_expr(self, c: _Container, node: Node, args: list[str]) -> str:
        if node.module_path and isinstance(node.params.get("type"), str):
            return f"{self.access(c, node.module_path)}({', '.join(args)})"
        replay = node.module
        what = node.params.get("function", "function")
        rendered = _render_replay(replay, args) if replay is not None else None
        if rendered is None:
            self.uses_opaque = True
            return f"_opaque({node.name!r}, 'the function {what}')({', '.join(args)})"
        text, module = rendered
        if module:
            self.imports[module] = None
        return text

    # -- whole file
    def write(self) -> str:
        self.build_tree()
        self.analyse_containers()
        for c in sorted(self.containers.values(), key=lambda c: -c.path.count(".")):
            self.classify(c)
        # children before parents, so identical blocks share one class
        for c in sorted(self.containers.values(), key=lambda c: -c.path.count(".")):
            if c.kind == "class":
                self.class_of(c)
        root = self.root.class_name
        head = [
            f'"""{self.g.name}: PyTorch source written by cnnviz.',
            "",
            "Submodules carry the names of the original model, so its state_dict loads directly:",
            "    model = build_model(); model.load_state_dict(weights)",
            '"""',
            "",
            "from __future__ import annotations",
            "",
        ]
        imports = ["import torch", "import torch.nn.functional as F", "from torch import nn"]
        for m in self.imports:
            if m not in ("torch", "torch.nn.functional"):
                imports.insert(0, f"import {m}")
        if self.uses_stochastic_depth:
            imports.append("from torchvision.ops import StochasticDepth")
        if self.uses_registry:
            imports.append("from cnnviz.core import ops as _cnnviz_ops")
        text = "\n".join(head + sorted(imports, key=_import_key))
        shape = self.g.input_shape
        text += f"\n\nINPUT_SHAPE = {_lit(tuple(shape)) if shape else None}\n"
        text += '"""Shape of one input sample (without the batch dimension)."""'
        if self.uses_layer_norm_2d:
            text += _LAYER_NORM_2D
        if self.uses_opaque:
            text += _OPAQUE_HELPER
        for name, body in self.classes:
            users = self.class_users[name]
            if users == [""]:
                doc = f"The {self.g.name} model."
            else:
                shown = ", ".join(u for u in users[:6]) + (", ..." if len(users) > 6 else "")
                doc = f"Block used by {shown}."
            text += f'\n\n\nclass {name}(nn.Module):\n    """{doc}"""\n\n{body}'

        frozen = sorted(
            {n.module_path for n in self.g if n.frozen and n.module_path and self._is_module(n)}
        )
        builder = [
            "",
            "",
            "",
            f"def build_model() -> {root}:",
            f'    """A new {root} with freshly initialised weights."""',
            f"    model = {root}()",
        ]
        for path in frozen:
            builder.append(f"    model.get_submodule({path!r}).requires_grad_(False)")
        builder.append("    return model")
        return text + "\n".join(builder) + "\n"


def _import_key(line: str) -> tuple[int, str]:
    return (1 if line.startswith("from") else 0, line)


def _render_replay(replay: Any, args: list[str]) -> tuple[str, str | None] | None:
    """Source for a replayed function call whose other arguments are constants."""
    op = getattr(replay, "op", None)
    target = getattr(replay, "target", None)
    slots = getattr(replay, "slots", None)
    if op is None or target is None or slots is None:
        return None
    lookup = {s: a for s, a in zip(slots, args, strict=False)}

    def render(v: Any) -> str | None:
        if _hashable(v) and v in lookup:
            return lookup[v]
        if v is None or isinstance(v, (bool, int, float, str)):
            return repr(v)
        if isinstance(v, (list, tuple)):
            parts = [render(x) for x in v]
            if any(p is None for p in parts):
                return None
            inner = ", ".join(parts)  # type: ignore[arg-type]
            if isinstance(v, list):
                return f"[{inner}]"
            return f"({inner}{',' if len(parts) == 1 else ''})"
        return None

    pos = [render(a) for a in replay.args]
    kw = {k: render(v) for k, v in replay.kwargs.items()}
    if any(p is None for p in pos) or any(v is None for v in kw.values()):
        return None
    call_args = ", ".join([*pos, *(f"{k}={v}" for k, v in kw.items())])  # type: ignore[list-item]
    if op == "call_method":
        first, rest = pos[0], ", ".join([*pos[1:], *(f"{k}={v}" for k, v in kw.items())])
        return f"{first}.{target}({rest})", None  # type: ignore[str-format]
    mod = getattr(target, "__module__", None)
    name = getattr(target, "__qualname__", None) or getattr(target, "__name__", None)
    if not mod or not name or "<" in name:
        return None
    if mod == "torch.nn.functional":
        return f"F.{name}({call_args})", None
    if mod.startswith("torch") and hasattr(__import__("torch"), name):
        return f"torch.{name}({call_args})", None
    if mod in ("_operator", "operator"):
        return f"operator.{name}({call_args})", "operator"
    return f"{mod}.{name}({call_args})", mod


def _hashable(v: Any) -> bool:
    try:
        hash(v)
    except TypeError:
        return False
    return True


def to_source(
    graph: ArchGraph,
    class_names: Mapping[str, str] | None = None,
    model_name: str | None = None,
) -> str:
    """The graph as a readable Python module defining the model and ``build_model()``.

    Args:
        graph: A valid graph (opaque nodes allowed: see the module docstring).
        class_names: ``{module path: class name}`` for the generated classes, e.g. from
            :func:`class_names_from_module` on the source model ("" names the model class);
            names are derived from the paths where missing.
        model_name: Name of the model class when ``class_names`` has none; from the graph's
            name by default.

    Returns:
        The source text; ``exec`` it (or save it as a ``.py`` file) and call ``build_model()``.

    Raises:
        CodegenError: The graph is invalid (unknown kinds, missing inputs, a cycle).
    """
    return _Writer(graph, class_names or {}, model_name).write()
