"""Import any ``nn.Module`` as an :class:`~cnnviz.core.graph.ArchGraph` through ``torch.fx``.

Modules the registry knows (``nn.Conv2d``, ``nn.BatchNorm2d`` ...) become leaves of the trace
and map to their kind with the parameters read from the module; other leaf modules become
``opaque`` nodes that keep the module and its measured output shape. Functions and methods
(``operator.add``, ``torch.cat``, ``F.relu``, ``x.mean`` ...) map to kinds where the registry has
one and become opaque function nodes otherwise. The module hierarchy becomes the node groups.

Shapes are measured by running the traced graph once on the meta device (the weights are
swapped for meta tensors for the run; build big models under ``with torch.device("meta"):``),
so no real computation happens. Nodes the registry knows take their output shape from its
shape rule instead of torch (tests check that both agree for the zoo and torchvision); where a
rule and torch both reject a node, the rule's message names the node, the expected and actual
shapes and the fix. Models whose code needs real values fall back to fake tensors, then to a
real batch of one.

A model that fx cannot trace (data-dependent control flow, say) is imported from forward hooks
on its leaf modules instead; the graph's ``notes`` name the cause.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import operator
import sys
import traceback
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn

from cnnviz.core import ops
from cnnviz.core.graph import ArchGraph, Node
from cnnviz.core.ops import Shape
from cnnviz.errors import CnnvizError


class TraceError(CnnvizError):
    """A model could not be imported (and the hook fallback failed too)."""


class SourceError(CnnvizError):
    """A model file or name could not be loaded."""


# ----------------------------------------------------------------------------- tracer
def _autowrapped() -> tuple[Callable, ...]:
    """Functions kept whole in the trace because their insides read shapes in Python."""
    fns: list[Callable] = []
    with contextlib.suppress(ImportError):
        from torchvision.models.shufflenetv2 import channel_shuffle

        fns.append(channel_shuffle)
    return tuple(fns)


_OPAQUE_TYPES: tuple[type, ...] = (nn.RNNBase, nn.MultiheadAttention, nn.Transformer)


class _Tracer(fx.Tracer):
    """Known modules and modules without children are leaves."""

    def __init__(self) -> None:
        super().__init__(autowrap_functions=_autowrapped())

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        if ops.kind_for_module(m) is not None or isinstance(m, _OPAQUE_TYPES):
            return True
        return next(iter(m.children()), None) is None


# --------------------------------------------------------------------- shape measuring
def _on_meta(module: nn.Module, mods: _Modules | None = None) -> bool:
    """True when the module has tensors and all live on the meta device."""
    found = False
    # Reading each module's own dicts is several times faster than parameters()/buffers().
    for m in (mods or _Modules(module)).all():
        for t in (*m._parameters.values(), *m._buffers.values()):
            if t is None:
                continue
            if not t.is_meta:
                return False
            found = True
    return found


class _Modules:
    """The submodules of a model by qualified name, with their kind and parameters.

    Looked up once per import and shared by the shape run and the conversion (``get_submodule``
    and ``params_from_module`` cost microseconds each, and DenseNet-201 has 600 module calls).
    """

    def __init__(self, root: nn.Module) -> None:
        self.root = root
        self._by_name = dict(root.named_modules(remove_duplicate=False))
        self._info: dict[str, tuple[nn.Module, str | None, dict[str, Any] | None]] = {}

    def all(self) -> Iterable[nn.Module]:
        """Every submodule (a shared one once per name) and the root."""
        return self._by_name.values()

    def get(self, target: str) -> nn.Module:
        """The submodule at ``target``."""
        sub = self._by_name.get(target)
        return sub if sub is not None else self.root.get_submodule(target)

    def info(self, target: str) -> tuple[nn.Module, str | None, dict[str, Any] | None]:
        """(module, registry kind or None, its parameters or None); do not mutate them."""
        hit = self._info.get(target)
        if hit is None:
            sub = self.get(target)
            kind = ops.kind_for_module(sub)
            params = ops.params_from_module(kind, sub) if kind is not None else None
            hit = self._info[target] = (sub, kind, params)
        return hit


class _Rejected(Exception):
    """Torch failed on a node whose registry rule had rejected its input: the model does not
    fit the input shape, and the rule's message (node, expected, actual, fix) says why."""

    def __init__(self, node: fx.Node, error: ops.ShapeError | ops.ParamError) -> None:
        super().__init__(str(error))
        self.where = node.target if node.op == "call_module" else node.name
        self.error = error


def _registry_shape(
    kind: str, params: dict[str, Any] | None, inputs: Sequence[Any], shapes: dict[fx.Node, Shape]
) -> Shape | ops.ShapeError | ops.ParamError | None:
    """The output shape (without batch) the registry gives; the rule's error where it rejects
    the input; None where torch should run the node instead.

    Running a node on meta tensors costs tens of microseconds to milliseconds (batch norm and
    cat go through Python decompositions); the registry's shape rule gives the same shape in
    a few. Only plain cases qualify: every input is in ``shapes`` (a float tensor of the run's
    dtype with a batch of one, computed by the model: a ``get_attr`` tensor has no batch
    dimension) and there is one output tensor. A node a rule rejects still runs in torch.
    """
    spec = ops.REGISTRY.get(kind)
    if spec is None or params is None or not inputs:
        return None
    in_shapes = [shapes.get(i) if isinstance(i, fx.Node) else None for i in inputs]
    if None in in_shapes:
        return None
    try:
        out = spec.shape(spec.resolve(params), in_shapes)
    except (ops.ShapeError, ops.ParamError) as e:
        return e
    except Exception:
        return None
    return None if isinstance(out, ops.MultiShape) else out


def _run_graph(
    module: nn.Module,
    graph: fx.Graph,
    inputs: Sequence[torch.Tensor],
    use_registry: bool | None = None,
    mods: _Modules | None = None,
) -> dict[fx.Node, Any]:
    """Run ``graph`` node by node, keeping every value (tensor or not).

    Args:
        module: The traced module (owner of the called submodules and attributes).
        graph: Its fx graph.
        inputs: One tensor per placeholder (further placeholders take their defaults).
        use_registry: Take the output shape of nodes the registry knows from its shape rule
            instead of running them; by default on meta inputs, where only shapes matter.
            Tests turn it off to check the rules against torch.
        mods: The module lookup, when the caller has one.
    """
    env: dict[fx.Node, Any] = {}
    feed = iter(inputs)
    if use_registry is None:
        use_registry = all(x.is_meta for x in inputs)
    mods = mods or _Modules(module)
    dtype = inputs[0].dtype if inputs else torch.get_default_dtype()
    # Per-sample shapes of the values the registry may take as inputs (see _registry_shape).
    shapes: dict[fx.Node, Shape] = {}

    def load(a: Any) -> Any:
        return fx.node.map_arg(a, lambda n: env[n])

    for node in graph.nodes:
        op = node.op
        out: Any = None
        if op == "placeholder":
            try:
                env[node] = next(feed)
            except StopIteration:
                env[node] = node.args[0] if node.args else None
        elif op == "get_attr":
            obj: Any = module
            for part in node.target.split("."):
                obj = getattr(obj, part)
            env[node] = obj
            continue
        elif op == "call_module":
            sub, kind, params = mods.info(node.target)
            if use_registry and kind is not None and not node.kwargs:
                out = _registry_shape(kind, params, node.args, shapes)
            if out is None or isinstance(out, Exception):
                env[node] = _run_node(node, out, sub, load)
                out = None
        elif op in ("call_function", "call_method"):
            if use_registry:
                table = _FUNCTIONS if op == "call_function" else _METHODS
                handler = table.get(node.target)
                if handler is not None:
                    try:
                        mapped = handler(node.args, node.kwargs, env, None)
                    except Exception:
                        mapped = None
                    if mapped is not None:
                        out = _registry_shape(mapped[0], mapped[1], mapped[2], shapes)
            if out is None or isinstance(out, Exception):
                env[node] = _run_node(node, out, None, load)
                out = None
        elif op == "output":
            env[node] = load(node.args[0])
            continue
        if out is not None:
            env[node] = torch.empty((1, *out), device="meta", dtype=dtype)
            shapes[node] = out
        elif use_registry:
            v = env[node]
            if isinstance(v, torch.Tensor) and v.dim() and v.shape[0] == 1 and v.dtype == dtype:
                shapes[node] = tuple(v.shape[1:])
    return env


def _run_node(
    node: fx.Node, rejected: Exception | None, sub: nn.Module | None, load: Callable
) -> Any:
    """Run one call in torch; raise :class:`_Rejected` where torch fails on a node whose
    registry rule had already rejected the input."""
    try:
        args, kwargs = load(node.args), load(node.kwargs)
        if sub is not None:
            return sub(*args, **kwargs)
        if node.op == "call_function":
            return node.target(*args, **kwargs)
        return getattr(args[0], node.target)(*args[1:], **kwargs)
    except Exception as e:
        if isinstance(rejected, (ops.ShapeError, ops.ParamError)):
            raise _Rejected(node, rejected) from e
        raise


def _measure(
    module: nn.Module,
    graph: fx.Graph,
    input_shapes: Sequence[tuple[int, ...]],
    use_registry: bool = True,
    mods: _Modules | None = None,
) -> dict[fx.Node, Any]:
    """All node values for a batch of one, without real computation where possible.

    Weights are swapped for meta tensors for the run (fake tensors are ten times slower per
    operation); a model whose code needs real data falls back to fake tensors, then to a real
    batch of one. On meta tensors, nodes the registry knows take their shape from its rules
    (``use_registry=False`` runs every node in torch, for tests that check those rules).
    """
    dtype = next(
        (t.dtype for t in module.parameters() if t.is_floating_point()), torch.get_default_dtype()
    )
    meta_inputs = [torch.empty(1, *s, device="meta", dtype=dtype) for s in input_shapes]
    mods = mods or _Modules(module)
    if _on_meta(module, mods):
        return _run_graph(module, graph, meta_inputs, use_registry, mods)
    try:
        from torch.nn.utils.stateless import _reparametrize_module

        # torch.empty on meta is cheap; empty_like goes through a Python reference (~0.2 ms).
        swapped = {
            k: torch.empty(v.shape, device="meta", dtype=v.dtype)
            for k, v in [*module.named_parameters(), *module.named_buffers()]
        }
        with _reparametrize_module(module, swapped):
            return _run_graph(module, graph, meta_inputs, use_registry, mods)
    except _Rejected:
        raise  # the model does not fit the input: no other run would change that
    except Exception:
        pass
    try:
        from torch._subclasses.fake_tensor import FakeTensorMode

        with FakeTensorMode(allow_non_fake_inputs=True), _quiet("torch._subclasses.fake_tensor"):
            xs = [torch.empty(1, *s, dtype=dtype) for s in input_shapes]
            return _run_graph(module, graph, xs, False, mods)
    except Exception:
        device = next((p.device for p in module.parameters()), torch.device("cpu"))
        with torch.no_grad():
            xs = [torch.zeros(1, *s, device=device, dtype=dtype) for s in input_shapes]
            return _run_graph(module, graph, xs, False, mods)


@contextlib.contextmanager
def _quiet(logger: str) -> Any:
    """Silence a torch logger that prints tracebacks of failures we handle ourselves."""
    log = logging.getLogger(logger)
    level = log.level
    log.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        log.setLevel(level)


# ------------------------------------------------------------------ function mapping
def _shape_of(v: Any) -> Any:
    if isinstance(v, torch.Tensor):
        return tuple(int(s) for s in v.shape[1:])
    if isinstance(v, (tuple, list)) and v and all(isinstance(t, torch.Tensor) for t in v):
        return ops.MultiShape(tuple(_shape_of(t) for t in v))
    return None


def _is_tensor_node(a: Any, env: dict[fx.Node, Any]) -> bool:
    return isinstance(a, fx.Node) and isinstance(env.get(a), torch.Tensor)


def _value(a: Any, env: dict[fx.Node, Any]) -> Any:
    return fx.node.map_arg(a, lambda n: env[n])


def _bind(names: Sequence[str], defaults: dict[str, Any], args: tuple, kwargs: dict) -> dict:
    """Positional and keyword arguments by name (for builtins without signatures)."""
    out = dict(defaults)
    for n, a in zip(names, args, strict=False):
        out[n] = a
    out.update(kwargs)
    return out


def _jsonable(v: Any) -> Any:
    if isinstance(v, torch.Size):
        return [int(x) for x in v]
    if isinstance(v, (tuple, list)):
        return [_jsonable(x) for x in v]
    if isinstance(v, (bool, int, float, str)) or v is None:
        return v
    raise TypeError(f"not a plain value: {v!r}")


# A handler gets (fx args, fx kwargs, env, output value) and returns (kind, params, inputs)
# or None to make an opaque node.
Handler = Callable[[tuple, dict, dict, Any], "tuple[str, dict, list[fx.Node]] | None"]


def _act(
    kind: str,
    names: Sequence[str] = ("input",),
    defaults: dict | None = None,
    keep: Sequence[str] = (),
) -> Handler:
    def h(args: tuple, kwargs: dict, env: dict, out: Any):
        b = _bind(names, defaults or {}, args, kwargs)
        x = b.get(names[0])
        if not _is_tensor_node(x, env):
            return None
        params = {k: _jsonable(_value(b[k], env)) for k in keep if k in b}
        return kind, params, [x]

    return h


def _merge(kind: str) -> Handler:
    def h(args: tuple, kwargs: dict, env: dict, out: Any):
        if kwargs.get("alpha", 1) != 1 or len(args) != 2:
            return None
        a, b = args
        ta, tb = _is_tensor_node(a, env), _is_tensor_node(b, env)
        if ta and tb:
            return kind, {}, [a, b]
        other = _value(b if ta else a, env)
        if (ta or tb) and isinstance(other, (int, float)) and not isinstance(other, bool):
            return kind, {"scalar": float(other)}, [a if ta else b]
        return None

    return h


def _cat(args: tuple, kwargs: dict, env: dict, out: Any):
    b = _bind(("tensors", "dim"), {"dim": 0}, args, kwargs)
    xs = b["tensors"]
    if not isinstance(xs, (list, tuple)) or not all(_is_tensor_node(x, env) for x in xs):
        return None
    dim = _value(b["dim"], env)
    if dim == 0 or not isinstance(dim, int):
        return None
    return "cat", {"dim": dim}, list(xs)


def _flatten(args: tuple, kwargs: dict, env: dict, out: Any):
    b = _bind(("input", "start_dim", "end_dim"), {"start_dim": 0, "end_dim": -1}, args, kwargs)
    s, e = _value(b["start_dim"], env), _value(b["end_dim"], env)
    if not _is_tensor_node(b["input"], env) or s == 0:
        return None
    return "flatten", {"start_dim": s, "end_dim": e}, [b["input"]]


def _reshape_like(args: tuple, kwargs: dict, env: dict, out: Any):
    """view/reshape/squeeze/unsqueeze that keep the batch: a reshape to the measured shape."""
    x = args[0] if args else kwargs.get("input", kwargs.get("self"))
    if not _is_tensor_node(x, env) or not isinstance(out, torch.Tensor):
        return None
    xin = env[x]
    if out.dim() == 0 or xin.dim() == 0 or out.shape[0] != xin.shape[0]:
        return None
    target = [int(s) for s in out.shape[1:]]
    literal = _value(list(args[1:]), env)
    if len(literal) == 1 and isinstance(literal[0], (list, tuple, torch.Size)):
        literal = list(literal[0])
    if len(literal) == len(target) + 1:
        target = [-1 if literal[i + 1] == -1 else t for i, t in enumerate(target)]
    return "reshape", {"shape": target}, [x]


def _mean(args: tuple, kwargs: dict, env: dict, out: Any):
    b = _bind(("input", "dim", "keepdim"), {"keepdim": False}, args, kwargs)
    if "dim" not in b or kwargs.get("dtype") is not None or not _is_tensor_node(b["input"], env):
        return None
    dim = _jsonable(_value(b["dim"], env))
    return "mean", {"dim": dim, "keepdim": bool(_value(b["keepdim"], env))}, [b["input"]]


def _permute(args: tuple, kwargs: dict, env: dict, out: Any):
    x = args[0]
    dims = _value(list(args[1:]), env) or _value(kwargs.get("dims"), env)
    if len(dims) == 1 and isinstance(dims[0], (list, tuple)):
        dims = list(dims[0])
    if not _is_tensor_node(x, env) or not dims or dims[0] != 0:
        return None
    return "permute", {"dims": [int(d) for d in dims]}, [x]


def _transpose(args: tuple, kwargs: dict, env: dict, out: Any):
    b = _bind(("input", "dim0", "dim1"), {}, args, kwargs)
    d0, d1 = _value(b.get("dim0"), env), _value(b.get("dim1"), env)
    x = b["input"]
    if not _is_tensor_node(x, env) or not isinstance(d0, int) or not isinstance(d1, int):
        return None
    rank = env[x].dim()
    if d0 % rank == 0 or d1 % rank == 0:
        return None
    return "transpose", {"dim0": d0, "dim1": d1}, [x]


def _chunk(args: tuple, kwargs: dict, env: dict, out: Any):
    b = _bind(("input", "chunks", "dim"), {"dim": 0}, args, kwargs)
    dim = _value(b["dim"], env)
    if not _is_tensor_node(b["input"], env) or dim == 0:
        return None
    return "chunk", {"chunks": int(_value(b["chunks"], env)), "dim": int(dim)}, [b["input"]]


def _getitem(args: tuple, kwargs: dict, env: dict, out: Any):
    """One output of a tuple (``getitem``), or basic slicing of a tensor (``slice``)."""
    x, i = args
    if not isinstance(x, fx.Node):
        return None
    xv = env.get(x)
    if isinstance(xv, (tuple, list)) and isinstance(i, int):
        return "getitem", {"index": i}, [x]
    if isinstance(xv, torch.Tensor) and xv.dim() >= 1:
        text = ops.slice_index(_value(i, env), xv.dim() - 1)
        if text is not None:
            return "slice", {"index": text}, [x]
    return None


def _pool(kind: str, names: Sequence[str], defaults: dict) -> Handler:
    def h(args: tuple, kwargs: dict, env: dict, out: Any):
        b = _bind(names, defaults, args, kwargs)
        if not _is_tensor_node(b["input"], env):
            return None
        params = {n: _jsonable(_value(b[n], env)) for n in names[1:] if n in b}
        if params.get("stride") in ([], ()):
            params["stride"] = None
        return kind, params, [b["input"]]

    return h


def _interpolate(args: tuple, kwargs: dict, env: dict, out: Any):
    names = ("input", "size", "scale_factor", "mode", "align_corners")
    b = _bind(
        names,
        {"size": None, "scale_factor": None, "mode": "nearest", "align_corners": None},
        args,
        kwargs,
    )
    if (
        not _is_tensor_node(b["input"], env)
        or b["mode"] not in ops.REGISTRY["upsample"].param("mode").choices
    ):
        return None
    sf = _value(b["scale_factor"], env)
    params = {
        "size": _jsonable(_value(b["size"], env)),
        "scale_factor": None
        if sf is None
        else _jsonable(sf if not isinstance(sf, int) else float(sf)),
        "mode": b["mode"],
        "align_corners": b["align_corners"],
    }
    if params["size"] is not None:
        params["scale_factor"] = None
    return "upsample", params, [b["input"]]


def _pad(args: tuple, kwargs: dict, env: dict, out: Any):
    b = _bind(("input", "pad", "mode", "value"), {"mode": "constant", "value": None}, args, kwargs)
    x = b["input"]
    if not _is_tensor_node(x, env):
        return None
    pad = [int(p) for p in _value(b["pad"], env)]
    mode, value = _value(b["mode"], env), _value(b["value"], env)
    if mode not in ops.REGISTRY["pad"].param("mode").choices:
        return None
    if mode == "constant" and value in (None, 0) and len(pad) == 4 and env[x].dim() == 4:
        return "zero_pad2d", {"padding": pad}, [x]
    if len(pad) % 2 or len(pad) // 2 >= env[x].dim():
        return None  # padding the batch dimension: keep it opaque
    return "pad", {"pad": pad, "mode": mode, "value": float(value or 0.0)}, [x]


def _softmax(kind: str) -> Handler:
    def h(args: tuple, kwargs: dict, env: dict, out: Any):
        b = _bind(("input", "dim"), {}, args, kwargs)
        if not _is_tensor_node(b["input"], env) or b.get("dim") is None or kwargs.get("dtype"):
            return None
        return kind, {"dim": int(_value(b["dim"], env))}, [b["input"]]

    return h


def _identity(args: tuple, kwargs: dict, env: dict, out: Any):
    if args and _is_tensor_node(args[0], env):
        return "identity", {}, [args[0]]
    return None


def _channel_shuffle(args: tuple, kwargs: dict, env: dict, out: Any):
    b = _bind(("x", "groups"), {}, args, kwargs)
    if not _is_tensor_node(b["x"], env):
        return None
    return "channel_shuffle", {"groups": int(_value(b["groups"], env))}, [b["x"]]


_POOL2D = ("input", "kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices")
_AVG2D = (
    "input",
    "kernel_size",
    "stride",
    "padding",
    "ceil_mode",
    "count_include_pad",
    "divisor_override",
)
_FUNCTIONS: dict[Any, Handler] = {
    operator.add: _merge("add"),
    operator.iadd: _merge("add"),
    torch.add: _merge("add"),
    operator.mul: _merge("mul"),
    operator.imul: _merge("mul"),
    torch.mul: _merge("mul"),
    torch.cat: _cat,
    torch.concat: _cat,
    torch.flatten: _flatten,
    torch.reshape: _reshape_like,
    torch.squeeze: _reshape_like,
    torch.unsqueeze: _reshape_like,
    torch.mean: _mean,
    torch.permute: _permute,
    torch.transpose: _transpose,
    torch.chunk: _chunk,
    operator.getitem: _getitem,
    F.relu: _act("relu", ("input", "inplace"), keep=("inplace",)),
    torch.relu: _act("relu"),
    F.relu_: _act("relu"),
    F.relu6: _act("relu6", ("input", "inplace"), keep=("inplace",)),
    F.leaky_relu: _act(
        "leaky_relu", ("input", "negative_slope", "inplace"), keep=("negative_slope", "inplace")
    ),
    F.elu: _act("elu", ("input", "alpha", "inplace"), keep=("alpha", "inplace")),
    F.gelu: _act("gelu", ("input",), keep=("approximate",)),
    F.silu: _act("silu", ("input", "inplace"), keep=("inplace",)),
    F.mish: _act("mish", ("input", "inplace"), keep=("inplace",)),
    F.hardswish: _act("hardswish", ("input", "inplace"), keep=("inplace",)),
    F.hardsigmoid: _act("hardsigmoid", ("input", "inplace"), keep=("inplace",)),
    torch.sigmoid: _act("sigmoid"),
    F.sigmoid: _act("sigmoid"),
    torch.tanh: _act("tanh"),
    F.tanh: _act("tanh"),
    F.softmax: _softmax("softmax"),
    torch.softmax: _softmax("softmax"),
    F.log_softmax: _softmax("log_softmax"),
    F.dropout: _act(
        "dropout", ("input", "p", "training", "inplace"), {"p": 0.5}, keep=("p", "inplace")
    ),
    F.dropout2d: _act(
        "dropout2d", ("input", "p", "training", "inplace"), {"p": 0.5}, keep=("p", "inplace")
    ),
    F.max_pool2d: _pool("max_pool2d", _POOL2D, {}),
    F.avg_pool2d: _pool("avg_pool2d", _AVG2D, {}),
    F.adaptive_avg_pool2d: _pool("adaptive_avg_pool2d", ("input", "output_size"), {}),
    F.adaptive_max_pool2d: _pool(
        "adaptive_max_pool2d", ("input", "output_size", "return_indices"), {}
    ),
    F.interpolate: _interpolate,
    F.pad: _pad,
}
with contextlib.suppress(ImportError):
    from torchvision.models.shufflenetv2 import channel_shuffle as _tv_channel_shuffle

    _FUNCTIONS[_tv_channel_shuffle] = _channel_shuffle

_METHODS: dict[str, Handler] = {
    "add": _merge("add"),
    "add_": _merge("add"),
    "__add__": _merge("add"),
    "__radd__": _merge("add"),
    "mul": _merge("mul"),
    "mul_": _merge("mul"),
    "__mul__": _merge("mul"),
    "__rmul__": _merge("mul"),
    "flatten": _flatten,
    "view": _reshape_like,
    "reshape": _reshape_like,
    "squeeze": _reshape_like,
    "unsqueeze": _reshape_like,
    "mean": _mean,
    "permute": _permute,
    "transpose": _transpose,
    "chunk": _chunk,
    "contiguous": _identity,
    "relu": _act("relu"),
    "relu_": _act("relu"),
    "sigmoid": _act("sigmoid"),
    "tanh": _act("tanh"),
    "softmax": _softmax("softmax"),
    "log_softmax": _softmax("log_softmax"),
}


class _Replay:
    """Calls a function or method captured at import with the node's tensors filled in.

    Non-tensor arguments were measured with a batch of one; they are replayed as constants.
    """

    def __init__(self, op: str, target: Any, args: Any, kwargs: Any, slots: list[fx.Node]) -> None:
        self.op, self.target, self.args, self.kwargs = op, target, args, kwargs
        self.slots = slots

    def __call__(self, *tensors: torch.Tensor) -> Any:
        lookup = dict(zip(self.slots, tensors, strict=True))

        def fill(a: Any) -> Any:
            return lookup[a] if isinstance(a, _Slot) else a

        args = _map(self.args, fill)
        kwargs = _map(self.kwargs, fill)
        if self.op == "call_method":
            return getattr(args[0], self.target)(*args[1:], **kwargs)
        return self.target(*args, **kwargs)

    def __repr__(self) -> str:
        return f"_Replay({_qualname(self.target)})"


class _Slot:
    """Marks where the i-th tensor input goes in a replayed call."""

    def __init__(self, i: int) -> None:
        self.i = i

    def __hash__(self) -> int:
        return hash(self.i)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Slot) and other.i == self.i


def _map(a: Any, fn: Callable[[Any], Any]) -> Any:
    if isinstance(a, tuple):
        return tuple(_map(x, fn) for x in a)
    if isinstance(a, list):
        return [_map(x, fn) for x in a]
    if isinstance(a, dict):
        return {k: _map(v, fn) for k, v in a.items()}
    return fn(a)


def _qualname(target: Any) -> str:
    if isinstance(target, str):
        return target
    mod = getattr(target, "__module__", None) or ""
    name = getattr(target, "__qualname__", None) or getattr(target, "__name__", repr(target))
    return f"{mod}.{name}" if mod else name


# --------------------------------------------------------------------- graph building
def _count(module: nn.Module) -> dict[str, int]:
    params = list(module.parameters())
    return {
        "num_params": sum(p.numel() for p in params),
        "num_trainable": sum(p.numel() for p in params if p.requires_grad),
        "num_buffers": sum(b.numel() for b in module.buffers()),
    }


def _frozen(module: nn.Module) -> bool:
    if module._modules:
        params = list(module.parameters(recurse=True))
    else:  # a leaf: its own parameters, without the generator machinery
        params = [p for p in module._parameters.values() if p is not None]
    return bool(params) and not any(p.requires_grad for p in params)


def _plain_copy(v: Any) -> Any:
    """A copy of plain JSON values (each node owns its parameters)."""
    if isinstance(v, dict):
        return {k: _plain_copy(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_plain_copy(x) for x in v]
    return v


def _parent(path: str) -> str:
    return path.rpartition(".")[0]


def _fn_group(node: fx.Node) -> str:
    stack = node.meta.get("nn_module_stack")
    if not stack:
        return ""
    last = list(stack.values())[-1]
    path = last[0] if isinstance(last, tuple) else str(last)
    return path if isinstance(path, str) else ""


def _tensor_args(args: Any, names: dict[fx.Node, str]) -> list[fx.Node]:
    """The fx nodes in ``args`` that became graph nodes, in argument order, repeats kept."""
    found: list[fx.Node] = []
    fx.node.map_arg(args, lambda n: found.append(n) if n in names else None)
    return found


def _convert(
    module: nn.Module,
    graph: fx.Graph,
    env: dict[fx.Node, Any],
    input_shapes: Sequence[tuple[int, ...]],
    name: str,
    mods: _Modules | None = None,
) -> ArchGraph:
    mods = mods or _Modules(module)
    given: set[str] = set()  # modules whose parameter dict a node owns already
    g = ArchGraph(name)
    names: dict[fx.Node, str] = {}
    used: set[str] = set()

    def unique(base: str) -> str:
        cand, k = base, 1
        while cand in used:
            cand = f"{base}_{k}"
            k += 1
        used.add(cand)
        return cand

    # Module and attribute nodes claim their qualified names before function nodes.
    for node in graph.nodes:
        if node.op == "call_module" or (
            node.op == "get_attr" and isinstance(env.get(node), torch.Tensor)
        ):
            names[node] = unique(node.target)
    n_inputs = 0
    for node in graph.nodes:
        value = env.get(node)
        if node.op == "placeholder":
            if n_inputs < len(input_shapes):
                nm = unique("input" if n_inputs == 0 else f"input_{n_inputs}")
                names[node] = nm
                g.add_input(nm, input_shapes[n_inputs])
                n_inputs += 1
            continue
        if node.op == "output":
            g.outputs = list(dict.fromkeys(names[n] for n in _tensor_args(node.args[0], names)))
            continue
        out_shape = _shape_of(value)
        if out_shape is None:
            continue  # a Python value (a size, a flag): folded into its users
        if node.op == "get_attr":
            t = value
            with contextlib.suppress(AttributeError):
                t = module.get_parameter(node.target)
            with contextlib.suppress(AttributeError):
                t = module.get_buffer(node.target)
            fill = 0.0
            if not t.is_meta and t.numel() and not getattr(t, "fake_mode", None):
                with contextlib.suppress(Exception), torch.no_grad():
                    flat = t.detach().flatten()
                    first = float(flat[0])
                    if bool((flat == first).all()):
                        fill = first
            g.add_node(
                Node(
                    name=names[node],
                    kind="parameter",
                    params={
                        "shape": [int(s) for s in t.shape],
                        "trainable": isinstance(t, nn.Parameter) and t.requires_grad,
                        "fill": fill,
                    },
                    group=_parent(node.target),
                    module_path=node.target,
                )
            )
            continue
        tensor_inputs = _tensor_args((node.args, node.kwargs), names)
        if node.op == "call_module":
            sub, kind, params = mods.info(node.target)
            nm = names[node]
            if kind is not None:
                n = Node(
                    nm,
                    kind,
                    params if node.target not in given else _plain_copy(params),
                    [names[i] for i in tensor_inputs],
                    _parent(node.target),
                    module_path=node.target,
                    frozen=_frozen(sub),
                )
            else:
                n = Node(
                    nm,
                    "opaque",
                    {"type": _qualname(type(sub)), **_count(sub)},
                    [names[i] for i in tensor_inputs],
                    _parent(node.target),
                    module_path=node.target,
                    frozen=_frozen(sub),
                    module=sub,
                    measured_shape=out_shape,
                )
            given.add(node.target)
            g.add_node(n)
            continue
        # call_function / call_method
        handler = (
            _FUNCTIONS.get(node.target) if node.op == "call_function" else _METHODS.get(node.target)
        )
        mapped = None
        if handler is not None:
            try:
                mapped = handler(node.args, node.kwargs, env, value)
            except Exception:
                mapped = None  # an unusual call form: keep it, as an opaque function
        nm = unique(node.name)
        names[node] = nm
        group = _fn_group(node)
        if mapped is not None:
            kind, params, ins = mapped
            if all(i in names for i in ins):
                g.add_node(Node(nm, kind, params, [names[i] for i in ins], group))
                continue
        slots = {n: _Slot(k) for k, n in enumerate(tensor_inputs)}

        def fill(a: Any, slots: dict = slots) -> Any:
            if isinstance(a, fx.Node):
                return slots[a] if a in slots else env[a]
            return a

        replay = _Replay(
            node.op,
            node.target,
            _map(node.args, fill),
            _map(node.kwargs, fill),
            [slots[n] for n in tensor_inputs],
        )
        g.add_node(
            Node(
                nm,
                "opaque",
                {"function": _qualname(node.target), "num_params": 0},
                [names[i] for i in tensor_inputs],
                group,
                module=replay,
                measured_shape=out_shape,
            )
        )
    return g


def _normalise_shapes(input_shape: Any) -> list[tuple[int, ...]]:
    if not input_shape:
        raise CnnvizError("an input shape is needed, e.g. (3, 224, 224)")
    if isinstance(input_shape[0], (list, tuple)):
        return [tuple(int(v) for v in s) for s in input_shape]
    return [tuple(int(v) for v in input_shape)]


def from_module(
    module: nn.Module,
    input_shape: Sequence[int] | Sequence[Sequence[int]],
    name: str | None = None,
    *,
    training_branches: bool = False,
) -> ArchGraph:
    """Import ``module`` as a graph.

    Args:
        module: Any ``nn.Module``; it is traced in eval mode and its mode is restored after.
            Build large models under ``with torch.device("meta"):`` for a cheap import.
        input_shape: Shape of one sample, e.g. ``(3, 224, 224)``; a list of shapes for a
            model with several inputs.
        name: Model name; the class name by default.
        training_branches: When modules holding parameters are not called in eval mode, trace
            once more in training mode and add the layers that run only there (GoogLeNet's
            auxiliary classifiers) as ``training_only`` nodes, with the extra outputs in
            ``aux_outputs``. Off by default: the plain import is the inference graph.

    Returns:
        The graph. When fx cannot trace the model, a chain of the leaf modules recorded with
        forward hooks, with the cause in ``graph.notes``.

    Raises:
        TraceError: Neither fx nor the hook fallback could import the model.
    """
    shapes = _normalise_shapes(input_shape)
    name = name or type(module).__name__
    was_training = module.training
    module.eval()
    try:
        try:
            graph = _Tracer().trace(module)
        except Exception as e:
            cause = _describe_exception(e)
            g = _from_hooks(module, shapes, name, cause)
            return g
        try:
            mods = _Modules(module)
            env = _measure(module, graph, shapes, mods=mods)
        except _Rejected as e:
            raise TraceError(
                f"{name}: the input shape {tuple(shapes[0])} does not fit the model: "
                f"{e.error.at(str(e.where))}"
            ) from None
        except Exception as e:
            raise TraceError(
                f"{name}: running the model on an input of shape {tuple(shapes[0])} failed: "
                f"{_describe_exception(e)}"
            ) from None
        g = _convert(module, graph, env, shapes, name, mods)
        unused = _unused_parameters(module, g)
        if unused and training_branches:
            g = _with_training_branches(module, g, shapes, mods)
            unused = _unused_parameters(module, g)
        _note_unused(g, unused)
        return g
    finally:
        module.train(was_training)


def _with_training_branches(
    module: nn.Module, g: ArchGraph, shapes: list[tuple[int, ...]], mods: _Modules
) -> ArchGraph:
    """``g`` (the eval graph) with the nodes that run only in training mode added.

    The model is traced in training mode and measured in eval mode (the same shapes, and no
    batch-norm statistics are updated). The eval graph must reappear in the training graph as
    the ancestors of its first outputs, node for node; the other nodes become
    ``training_only`` and the other outputs ``aux_outputs``. When that is not so (the forward
    pass differs in other ways) or the training trace fails, ``g`` is returned unchanged.
    """
    try:
        module.train()
        fx_graph = _Tracer().trace(module)
        module.eval()
        env = _measure(module, fx_graph, shapes, mods=mods)
        t = _convert(module, fx_graph, env, shapes, g.name, mods)
    except Exception:
        return g
    finally:
        module.eval()
    if len(t.outputs) == 1:
        # A namedtuple built from the outputs (GoogLeNetOutputs): its fields are the outputs.
        last = t[t.outputs[0]]
        target = getattr(last.module, "target", None)
        if isinstance(target, type) and issubclass(target, tuple):
            t.remove_node(last.name)
            t.outputs = list(last.inputs)
    k = len(g.outputs)
    main: set[str] = set()
    stack = list(t.outputs[:k])
    while stack:
        n = stack.pop()
        if n not in main:
            main.add(n)
            stack.extend(t[n].inputs)
    t_main = [n for n in t.nodes if n in main]
    if len(t_main) != len(g) or len(t.outputs) <= k:
        return g
    rename = dict(zip(t_main, g.nodes, strict=True))
    for tn, gn in rename.items():
        a, b = t[tn], g[gn]
        if (a.kind, a.params, a.module_path) != (b.kind, b.params, b.module_path) or [
            rename.get(i) for i in a.inputs
        ] != b.inputs:
            return g
    if [rename[o] for o in t.outputs[:k]] != g.outputs:
        return g
    # Function names may differ between the traces (an auxiliary ``flatten`` traced first takes
    # the main one's name): the eval names stay, a clashing training-only name gets a suffix.
    taken = set(g.nodes) | {n for n in t.nodes if n not in main}
    for n in t.nodes:
        if n not in main:
            new, j = n, 1
            if n in g.nodes:
                while new in taken:
                    new, j = f"{n}_{j}", j + 1
                taken.add(new)
            rename[n] = new
    out = ArchGraph(g.name)
    for n in t:
        if n.name in main:
            out.add_node(g[rename[n.name]])
        else:
            n.name, n.inputs, n.training_only = rename[n.name], [rename[i] for i in n.inputs], True
            out.add_node(n)
    out.outputs = list(g.outputs)
    out.aux_outputs = [rename[o] for o in t.outputs[k:]]
    out.notes = list(g.notes)
    return out


def _unused_parameters(module: nn.Module, g: ArchGraph) -> dict[str, int]:
    """Parameter counts of the top-level modules whose parameters no node of ``g`` owns."""
    used = {n.module_path for n in g if n.module_path}
    unused: dict[str, int] = {}
    for pname, p in module.named_parameters():
        path = pname
        while path and path not in used:
            path = _parent(path)
        if not path:
            owner = _parent(pname) or pname
            top = owner.split(".")[0]
            unused[top] = unused.get(top, 0) + p.numel()
    return unused


def _note_unused(g: ArchGraph, unused: dict[str, int]) -> None:
    """Say so when some parameters belong to modules the forward pass never calls."""
    if unused:
        total = sum(unused.values())
        where = ", ".join(f"{k} ({v:,})" for k, v in list(unused.items())[:5])
        g.notes.append(
            f"{total:,} parameters belong to modules the forward pass does not call in eval "
            f"mode and are not in the graph: {where}"
        )


def _describe_exception(e: BaseException) -> str:
    """The exception and the innermost frame of user code that raised it."""
    text = f"{type(e).__name__}: {e}".strip()
    frames = traceback.extract_tb(e.__traceback__)
    user = [f for f in frames if "/torch/" not in f.filename and "cnnviz/core" not in f.filename]
    if user:
        f = user[-1]
        text += f" (at {f.filename}, line {f.lineno}: {f.line})"
    return text


# ------------------------------------------------------------------- hook fallback
def _from_hooks(
    module: nn.Module, shapes: list[tuple[int, ...]], name: str, cause: str
) -> ArchGraph:
    """Record leaf-module calls during a real forward pass as a chain of nodes."""
    records: list[tuple[str, nn.Module, list[torch.Tensor], Any]] = []
    tracer = _Tracer()
    handles = []
    for qual, sub in module.named_modules():
        if qual and tracer.is_leaf_module(sub, qual):
            handles.append(
                sub.register_forward_hook(
                    lambda m, i, o, q=qual: records.append((q, m, list(i), o))
                )
            )
    device = next((p.device for p in module.parameters()), torch.device("cpu"))
    dtype = next(
        (t.dtype for t in module.parameters() if t.is_floating_point()), torch.get_default_dtype()
    )
    if device.type == "meta":
        raise TraceError(
            f"{name}: torch.fx cannot trace it ({cause}), and the hook fallback needs real "
            "weights; build the model off the meta device"
        )
    try:
        gen = torch.Generator(device="cpu").manual_seed(0)
        xs = [torch.randn(1, *s, generator=gen).to(device=device, dtype=dtype) for s in shapes]
        with torch.no_grad():
            module(*xs)
    except Exception as e:
        raise TraceError(
            f"{name}: torch.fx cannot trace it ({cause}), and running it failed too: "
            f"{_describe_exception(e)}"
        ) from None
    finally:
        for h in handles:
            h.remove()
    g = ArchGraph(name)
    g.notes.append(
        f"torch.fx could not trace {name}: {cause}. Showing the leaf modules in the order "
        "they ran (from forward hooks); functional operations between them (F.relu, "
        "additions, reshapes ...) are not seen and branches may be missing."
    )
    inputs = [
        g.add_input("input" if k == 0 else f"input_{k}", s).name for k, s in enumerate(shapes)
    ]
    produced: dict[int, str] = {id(x): n for x, n in zip(xs, inputs, strict=True)}
    shape_of: dict[str, tuple[int, ...]] = dict(zip(inputs, shapes, strict=True))
    last = inputs[0]
    used: set[str] = set(inputs)
    for qual, m, ins, out in records:
        nm, k = qual, 1
        while nm in used:
            nm = f"{qual}_{k}"
            k += 1
        used.add(nm)
        src = [produced.get(id(t)) for t in ins if isinstance(t, torch.Tensor)]
        in_names = [s if s is not None else last for s in src] or [last]
        in_shape = tuple(ins[0].shape[1:]) if ins and isinstance(ins[0], torch.Tensor) else None
        if in_shape is not None and shape_of.get(in_names[0]) != in_shape:
            # Something unseen (a functional reshape, say) ran between: make it explicit.
            prev = shape_of.get(in_names[0])
            if prev is not None and ops.prod(prev) == ops.prod(in_shape):
                rn = f"{nm}.input_reshape"
                g.add_node(
                    Node(rn, "reshape", {"shape": list(in_shape)}, [in_names[0]], _parent(qual))
                )
                shape_of[rn] = in_shape
                in_names = [rn, *in_names[1:]]
        kind = ops.kind_for_module(m)
        out_shape = _shape_of(out)
        if kind is not None and shape_of.get(in_names[0]) == in_shape:
            node = Node(
                nm,
                kind,
                ops.params_from_module(kind, m),
                in_names,
                _parent(qual),
                module_path=qual,
                frozen=_frozen(m),
            )
        else:
            node = Node(
                nm,
                "opaque",
                {"type": _qualname(type(m)), **_count(m)},
                in_names,
                _parent(qual),
                module_path=qual,
                frozen=_frozen(m),
                module=m,
                measured_shape=out_shape,
            )
        g.add_node(node)
        if isinstance(out, torch.Tensor):
            produced[id(out)] = nm
            shape_of[nm] = tuple(out.shape[1:])
        last = nm
    g.outputs = [last]
    return g


# ------------------------------------------------------------------ torchvision, files
def torchvision_names() -> list[str]:
    """Classification models of torchvision."""
    import torchvision

    return sorted(torchvision.models.list_models(module=torchvision.models))


def default_input_shape(tv_name: str) -> tuple[int, int, int]:
    """(3, crop, crop) at the evaluation resolution of the model's default weights."""
    import torchvision

    try:
        weights = torchvision.models.get_model_weights(tv_name).DEFAULT
        crop = weights.transforms().crop_size[0]
    except Exception:
        crop = 224
    return (3, int(crop), int(crop))


def build_torchvision(name: str, meta: bool = True, **kwargs: Any) -> nn.Module:
    """A torchvision classification model without weights (on the meta device by default).

    Raises:
        SourceError: Unknown name, with suggestions.
    """
    import difflib
    import warnings

    import torchvision

    available = torchvision_names()
    if name not in available:
        close = difflib.get_close_matches(name, available, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise SourceError(f"torchvision has no classification model {name!r}{hint}")
    if name in ("googlenet", "inception_v3"):
        kwargs.setdefault("aux_logits", False)
        kwargs.setdefault("init_weights", False)
    ctx = torch.device("meta") if meta else contextlib.nullcontext()
    with ctx, _regnet_widths_on_cpu(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torchvision.models.get_model(name, weights=None, **kwargs)


@contextlib.contextmanager
def _regnet_widths_on_cpu() -> Any:
    """RegNet's builder computes its widths with tensors and reads them back with
    ``.tolist()``, which a meta tensor cannot do: compute those few numbers on the CPU."""
    try:
        from torchvision.models.regnet import BlockParams
    except ImportError:  # pragma: no cover
        yield
        return
    original = BlockParams.__dict__["from_init_params"]

    def on_cpu(cls: type, *args: Any, **kwargs: Any) -> Any:
        with torch.device("cpu"):
            return original.__func__(cls, *args, **kwargs)

    BlockParams.from_init_params = classmethod(on_cpu)
    try:
        yield
    finally:
        BlockParams.from_init_params = original


def from_torchvision(
    name: str, input_shape: Sequence[int] | None = None, **kwargs: Any
) -> ArchGraph:
    """Import a torchvision classification model (no weights are downloaded).

    Args:
        name: e.g. ``resnet50``; googlenet and inception_v3 default to ``aux_logits=False``
            (with ``aux_logits=True`` their auxiliary heads become training-only nodes).
        input_shape: One sample's shape; default: the weights' evaluation resolution.
        **kwargs: Passed to the torchvision builder (``num_classes`` ...).
    """
    model = build_torchvision(name, meta=True, **kwargs)
    shape = tuple(input_shape) if input_shape else default_input_shape(name)
    return from_module(model, shape, name=name, training_branches=True)


def load_object(spec: str) -> Any:
    """The object named by ``path/file.py:NAME`` (the file is imported, never evaluated).

    Raises:
        SourceError: Missing file, missing name, or an exception in the file (with its line).
    """
    path_text, sep, attr = spec.rpartition(":")
    if not sep or not path_text or not attr:
        raise SourceError(f"{spec!r}: expected path/file.py:NAME, e.g. models/net.py:MyNet")
    path = Path(path_text).expanduser()
    if not path.is_file():
        raise SourceError(f"{path}: no such file")
    mod_name = f"_cnnviz_user_{abs(hash(str(path.resolve())))}"
    module_spec = importlib.util.spec_from_file_location(mod_name, path)
    if module_spec is None or module_spec.loader is None:
        raise SourceError(f"{path}: cannot be imported as a Python file")
    mod = importlib.util.module_from_spec(module_spec)
    sys.modules[mod_name] = mod  # dataclasses and pickling look the module up by name
    try:
        module_spec.loader.exec_module(mod)
    except SyntaxError as e:
        del sys.modules[mod_name]
        raise SourceError(f"{path}, line {e.lineno}: syntax error: {e.msg}") from None
    except Exception as e:
        del sys.modules[mod_name]
        raise SourceError(f"{path}: importing it failed: {_describe_user(e, path)}") from None
    if not hasattr(mod, attr):
        public = [n for n in dir(mod) if not n.startswith("_")]
        import difflib

        close = difflib.get_close_matches(attr, public, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise SourceError(f"{path} defines no {attr!r}{hint}")
    return getattr(mod, attr)


def _describe_user(e: BaseException, path: Path) -> str:
    text = f"{type(e).__name__}: {e}"
    frames = [
        f
        for f in traceback.extract_tb(e.__traceback__)
        if Path(f.filename).resolve() == path.resolve()
    ]
    if frames:
        text += f" (line {frames[-1].lineno}: {frames[-1].line})"
    return text


def from_file(spec: str, input_shape: Sequence[int], name: str | None = None) -> ArchGraph:
    """Import ``path/file.py:ClassOrFactory``: the class is instantiated (or the factory called)
    with no arguments, then traced (with its training-only branches, see :func:`from_module`).

    Raises:
        SourceError: The file, name or construction failed, with the file and line.
    """
    obj = load_object(spec)
    path = Path(spec.rpartition(":")[0])
    if isinstance(obj, nn.Module):
        model = obj
    elif callable(obj):
        try:
            model = obj()
        except Exception as e:
            raise SourceError(
                f"{spec}: calling {getattr(obj, '__name__', 'it')}() failed: "
                f"{_describe_user(e, path)}"
            ) from None
    else:
        raise SourceError(f"{spec}: {type(obj).__name__} is neither a module class nor a factory")
    if not isinstance(model, nn.Module):
        raise SourceError(f"{spec}: returned a {type(model).__name__}, not a torch nn.Module")
    return from_module(
        model, input_shape, name=name or spec.rpartition(":")[2], training_branches=True
    )
