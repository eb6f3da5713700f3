"""The registry of operation kinds: parameters, shape rules, counts, receptive fields, builders.

Every kind a node of an :class:`~cnnviz.core.graph.ArchGraph` can have is an :class:`OpSpec` in
:data:`REGISTRY`. A spec knows its hyper-parameters (with defaults, bounds and a one-line doc),
how it maps input shapes to an output shape, how many parameters, multiply-accumulates (MACs)
and element-wise operations it costs, how it changes the receptive field, how to build it as an
``nn.Module``, and how to show each of those numbers as a formula with the values substituted.

Conventions (the numbers users see, and the tests check against torchvision's published
figures):

* Shapes leave out the batch dimension: a conv2d input is ``(C, H, W)``. Parameters that name a
  tensor dimension (``dim`` of cat, softmax, flatten, mean, permute) use PyTorch's convention,
  which counts the batch dimension as 0, so that they read like the code.
* MACs: convolution ``(C_in/groups)*K_h*K_w*C_out*H_out*W_out``; transposed convolution
  ``C_in*(C_out/groups)*K_h*K_w*H_in*W_in``; linear ``in*out*positions`` (every leading
  position, e.g. each pixel of a channels-last tensor). Biases are not counted. Everything else
  costs 0 MACs and is reported as element-wise operations ("ops") instead: one per output
  element for activations and merges, ``K_h*K_w`` per output element for pooling windows, one
  per input element for adaptive/global pooling, 2 per element for batch norm (scale and shift
  at inference) and 5 per element for the other normalisations (mean, variance, subtract,
  divide, scale and shift counted loosely).
* Receptive fields follow Araujo, Norris & Sim, "Computing Receptive Fields of Convolutional
  Neural Networks", Distill 2019: per spatial axis a ``size``, a ``jump`` (effective stride) and
  an effective ``padding`` such that the centre of output unit ``i`` lies at input pixel
  ``-padding + i*jump + (size-1)/2``.
"""

from __future__ import annotations

import difflib
import functools
import math
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import reduce
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from cnnviz.errors import CnnvizError

Shape = tuple[int, ...]


class MultiShape(tuple):
    """The shapes of an operation that returns several tensors (``chunk``, pooling indices)."""

    __slots__ = ()


class _NodeError(CnnvizError):
    """Base of errors that name a node, the expected and actual values and a fix."""

    def __init__(
        self,
        problem: str,
        *,
        node: str | None = None,
        expected: Any = None,
        actual: Any = None,
        fix: str | None = None,
    ) -> None:
        self.problem = problem
        self.node = node
        self.expected = expected
        self.actual = actual
        self.fix = fix
        super().__init__(self._compose())

    def _compose(self) -> str:
        text = f"{self.node}: {self.problem}" if self.node else self.problem
        if self.expected is not None or self.actual is not None:
            text += f" (expected {_fmt_val(self.expected)}, got {_fmt_val(self.actual)})"
        if self.fix:
            text += f"; fix: {self.fix}"
        return text

    def at(self, node: str) -> _NodeError:
        """The same error, naming ``node``."""
        return type(self)(
            self.problem, node=node, expected=self.expected, actual=self.actual, fix=self.fix
        )


class ShapeError(_NodeError):
    """The input shapes of a node do not fit its operation."""


class ParamError(_NodeError):
    """A hyper-parameter is missing, of the wrong type, out of bounds or inconsistent."""


def _fmt_val(v: Any) -> str:
    if isinstance(v, tuple) and v and all(isinstance(x, int) for x in v):
        return "(" + ", ".join(str(x) for x in v) + ")"
    return str(v)


# ---------------------------------------------------------------------------- small helpers
def prod(values: Sequence[int]) -> int:
    """Product of integers (1 for an empty sequence)."""
    return reduce(operator.mul, values, 1)


def _n(v: int | float) -> str:
    """A number with thousands separators, floats without needless decimals."""
    if isinstance(v, float) and not v.is_integer():
        return f"{v:,.4g}"
    return f"{int(v):,}"


def _tuple(v: Any, n: int, name: str = "value") -> tuple:
    """``v`` as an n-tuple: an int is repeated, a list must have length n."""
    if isinstance(v, (list, tuple)):
        if len(v) != n:
            raise ParamError(f"{name} needs {n} values, got {len(v)}", fix=f"give {n} values")
        return tuple(v)
    return (v,) * n


def shape_str(shape: Any) -> str:
    """``(64, 56, 56)`` style text, or several shapes for multi-output operations."""
    if shape is None:
        return "?"
    if isinstance(shape, MultiShape):
        return ", ".join(shape_str(s) for s in shape)
    return "(" + ", ".join(str(s) for s in shape) + ")"


def _axes(n: int) -> tuple[str, ...]:
    return {1: ("L",), 2: ("H", "W"), 3: ("D", "H", "W")}.get(n, tuple(f"S{i}" for i in range(n)))


def _sample_dim(dim: int, rank: int, what: str = "dim") -> int:
    """Index into a per-sample shape of ``rank`` for a PyTorch dim that counts the batch."""
    full = rank + 1
    d = dim + full if dim < 0 else dim
    if not 0 <= d < full:
        raise ParamError(f"{what}={dim} is out of range for a {full}-D tensor")
    if d == 0:
        raise ParamError(f"{what}={dim} is the batch dimension", fix=f"use {what}=1 or higher")
    return d - 1


# ------------------------------------------------------------------------- receptive field
@dataclass(frozen=True)
class RF:
    """Receptive field of one unit of a tensor, per spatial axis (Distill 2019 convention).

    Attributes:
        size: Input pixels covered per axis, or None where not tracked (after global mixing).
        jump: Input pixels between neighbouring units (effective stride); may be fractional
            after transposed convolution or upsampling.
        padding: Effective padding: unit i is centred on input pixel
            ``-padding + i*jump + (size-1)/2``.
        global_: True when the unit depends on every input position (global pooling, a linear
            layer on a flattened map, softmax over space, a squeeze-and-excitation scale ...).
            ``size`` etc. may still give the local window of the spatial path.
        dims: Which per-sample tensor dimension holds each spatial axis (normally ``(1, 2)``
            for a (C, H, W) tensor; ``(0, 1)`` for channels-last; equal entries once flattened).
    """

    size: tuple[float, ...] | None
    jump: tuple[float, ...] | None
    padding: tuple[float, ...] | None
    global_: bool = False
    dims: tuple[int, ...] | None = None

    @property
    def is_local(self) -> bool:
        """True when size/jump/padding are known."""
        return self.size is not None

    @staticmethod
    def identity(n: int, rank: int) -> RF:
        """The field of an input tensor with ``n`` trailing spatial axes."""
        return RF((1,) * n, (1,) * n, (0,) * n, False, tuple(range(rank - n, rank)))

    @staticmethod
    def everywhere() -> RF:
        """Global: every input position contributes and no local window remains."""
        return RF(None, None, None, True, None)


def _num(x: float) -> float | int:
    return int(x) if float(x).is_integer() else x


def rf_window(
    rf: RF | None,
    in_shape: Shape,
    kernel: Sequence[int],
    stride: Sequence[float],
    padding: Sequence[float],
    dilation: Sequence[int],
) -> tuple[RF | None, list[str], list[str]]:
    """Apply a sliding window (conv/pool) to a field; returns the field, formulas, warnings."""
    if rf is None:
        return None, [], []
    if not rf.is_local:
        return rf, ["rf: global (every input position already contributes)"], []
    n = len(kernel)
    want = tuple(range(len(in_shape) - n, len(in_shape)))
    if rf.dims != want:
        return (
            RF(None, None, None, rf.global_, None),
            [],
            ["receptive field not tracked: spatial axes are not the last dimensions here"],
        )
    size, jump, pad, lines = [], [], [], []
    names = _axes(n)
    for a in range(n):
        k_eff = dilation[a] * (kernel[a] - 1) + 1
        s_in, j_in, p_in = rf.size[a], rf.jump[a], rf.padding[a]
        s = s_in + (k_eff - 1) * j_in
        p = p_in + padding[a] * j_in
        j = j_in * stride[a]
        size.append(_num(s))
        jump.append(_num(j))
        pad.append(_num(p))
        kk = f"{dilation[a]}*({kernel[a]}-1)+1" if dilation[a] != 1 else f"{kernel[a]}"
        lines.append(
            f"{names[a]}: size = {_n(s_in)} + ({kk} - 1)*{_n(j_in)} = {_n(s)}; "
            f"jump = {_n(j_in)}*{_n(stride[a])} = {_n(j)}; "
            f"padding = {_n(p_in)} + {_n(padding[a])}*{_n(j_in)} = {_n(p)}"
        )
    return RF(tuple(size), tuple(jump), tuple(pad), rf.global_, rf.dims), _dedupe(lines), []


def rf_transposed(
    rf: RF | None,
    in_shape: Shape,
    kernel: Sequence[int],
    stride: Sequence[float],
    padding: Sequence[float],
    dilation: Sequence[int],
) -> tuple[RF | None, list[str], list[str]]:
    """Field through a transposed convolution (or upsampling) in the continuous approximation.

    Output unit ``o`` reads input units centred on ``(o + p - (k'-1)/2)/s``, about
    ``(k'-1)/s + 1`` of them, so: ``jump /= s``, ``size += (k'-1)/s*jump_in`` and
    ``padding += ((k'-1) - p)/s*jump_in``. Jumps below one pixel are expected here.
    """
    if rf is None:
        return None, [], []
    if not rf.is_local:
        return rf, ["rf: global (every input position already contributes)"], []
    n = len(kernel)
    want = tuple(range(len(in_shape) - n, len(in_shape)))
    if rf.dims != want:
        return RF(None, None, None, rf.global_, None), [], ["receptive field not tracked here"]
    size, jump, pad, lines = [], [], [], []
    names = _axes(n)
    for a in range(n):
        k_eff = dilation[a] * (kernel[a] - 1) + 1
        s_in, j_in, p_in = rf.size[a], rf.jump[a], rf.padding[a]
        s = s_in + (k_eff - 1) / stride[a] * j_in
        p = p_in + ((k_eff - 1) - padding[a]) / stride[a] * j_in
        j = j_in / stride[a]
        size.append(_num(s))
        jump.append(_num(j))
        pad.append(_num(p))
        lines.append(
            f"{names[a]}: size = {_n(s_in)} + ({k_eff} - 1)/{_n(stride[a])}*{_n(j_in)} = {_n(s)}; "
            f"jump = {_n(j_in)}/{_n(stride[a])} = {_n(j)}; "
            f"padding = {_n(p_in)} + ({k_eff} - 1 - {_n(padding[a])})/{_n(stride[a])}*"
            f"{_n(j_in)} = {_n(p)}"
        )
    return RF(tuple(size), tuple(jump), tuple(pad), rf.global_, rf.dims), _dedupe(lines), []


def _dedupe(lines: list[str]) -> list[str]:
    """Show one line for H and W when both axes compute the same."""
    if len(lines) == 2 and lines[0][2:] == lines[1][2:]:
        return ["H, W" + lines[0][1:]]
    return lines


def rf_merge(rfs: Sequence[RF | None]) -> tuple[RF | None, list[str], list[str]]:
    """Union of aligned branches (add, mul, cat over channels); warns when misaligned."""
    known = [r for r in rfs if r is not None]
    if not known:
        return None, [], []
    is_global = any(r.global_ for r in known)
    # Equal fields add nothing to a union: DenseNet concatenates up to 48 inputs, most of
    # them with distinct fields but a cat of one tensor with itself is common elsewhere.
    local = list(dict.fromkeys(r for r in known if r.is_local))
    if not local:
        return RF.everywhere(), ["rf: global (a branch depends on every position)"], []
    warnings: list[str] = []
    first = local[0]
    if any(r.dims != first.dims for r in local):
        return RF(None, None, None, True, None), [], ["branches have different layouts"]
    n = len(first.size)
    if any(r.jump != first.jump for r in local):
        warnings.append(
            "branches are misaligned: jumps differ ("
            + " vs ".join(str(tuple(r.jump)) for r in local)
            + "); the union is only approximate"
        )
    size, pad = [], []
    for a in range(n):
        sizes = [r.size[a] for r in local]
        starts = [-r.padding[a] for r in local]
        if not warnings and len(local) > 1:
            centres = {st + (sz - 1) / 2 for st, sz in zip(starts, sizes, strict=True)}
            if len(centres) > 1:
                warnings.append(
                    "branches are misaligned: their centres differ on axis "
                    f"{_axes(n)[a]} by {_n(max(centres) - min(centres))} pixels"
                )
        left = min(starts)
        right = max(st + sz - 1 for st, sz in zip(starts, sizes, strict=True))
        size.append(_num(right - left + 1))
        pad.append(_num(-left))
    distinct = list(dict.fromkeys(tuple(r.size) for r in local))
    lines = [
        "rf = union of the branches: size " + " | ".join(map(str, distinct)) + f" -> {tuple(size)}"
    ]
    if is_global:
        lines.append("global: another branch depends on every position (e.g. an SE scale)")
    return RF(tuple(size), first.jump, tuple(pad), is_global, first.dims), lines, warnings


def _rf_pointwise(
    p: dict, rfs: list[RF | None], in_shapes: list, out: Any
) -> tuple[RF | None, list[str], list[str]]:
    return (rfs[0] if rfs else None), [], []


def _rf_global(
    p: dict, rfs: list[RF | None], in_shapes: list, out: Any
) -> tuple[RF | None, list[str], list[str]]:
    if not rfs or rfs[0] is None:
        return None, [], []
    return RF.everywhere(), ["rf: global (this operation mixes every position)"], []


def _mixes(rf: RF | None, dims: set[int]) -> bool:
    """True when an operation along per-sample ``dims`` mixes spatial positions of ``rf``."""
    if rf is None:
        return False
    if rf.dims is None:
        return not rf.is_local and rf.global_
    return any(d in dims for d in rf.dims)


def _rf_along(
    dims_of: Callable[[dict, Shape], set[int]],
) -> Callable[[dict, list, list, Any], tuple[RF | None, list[str], list[str]]]:
    """Rule for ops that mix along some dimensions: global when a spatial axis is mixed."""

    def rule(p: dict, rfs: list, in_shapes: list, out: Any):
        rf = rfs[0] if rfs else None
        if rf is None:
            return None, [], []
        if rf.dims is None and rf.is_local is False:
            return rf, [], []
        if _mixes(rf, dims_of(p, in_shapes[0])):
            return RF.everywhere(), ["rf: global (mixes along a spatial axis)"], []
        return rf, [], []

    return rule


def _rf_spatial_stats(p: dict, rfs: list, in_shapes: list, out: Any):
    """Instance/group norm: statistics over all positions make every unit depend on all."""
    rf = rfs[0] if rfs else None
    if rf is None:
        return None, [], []
    return (
        replace(rf, global_=True),
        ["rf: global (normalised by statistics over all positions); local window kept"],
        [],
    )


# --------------------------------------------------------------------------- parameter specs
@dataclass(frozen=True)
class ParamSpec:
    """One hyper-parameter of a kind.

    Attributes:
        name: Keyword, as in the PyTorch constructor.
        type: ``int``, ``float``, ``bool``, ``str``, ``choice``, ``size`` (an int or a list of
            ``length`` ints), ``padding`` (size or 'same'/'valid'), ``ints`` (list of ints),
            ``floats`` (a float or a list of floats), ``dims`` (an int or a list of ints).
        default: Default value; ``REQUIRED`` when the user must give it.
        doc: One line for the inspector.
        choices: Allowed values for ``choice``.
        minimum: Smallest allowed number (per element for sizes).
        maximum: Largest allowed number.
        optional: None is allowed.
        length: Number of values of a ``size``.
    """

    name: str
    type: str
    default: Any
    doc: str
    choices: tuple | None = None
    minimum: float | None = None
    maximum: float | None = None
    optional: bool = False
    length: int | None = None


REQUIRED = object()
"""Default of a parameter that has none."""


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return (isinstance(v, (int, float))) and not isinstance(v, bool)


def _bounds(ps: ParamSpec, v: Any, x: float) -> str | None:
    """A problem with element ``x`` of value ``v`` against the bounds of ``ps``, or None."""
    if ps.minimum is not None and x < ps.minimum:
        return f"{ps.name}={v!r} is below the minimum {_n(ps.minimum)}"
    if ps.maximum is not None and x > ps.maximum:
        return f"{ps.name}={v!r} is above the maximum {_n(ps.maximum)}"
    return None


def _check_value(ps: ParamSpec, v: Any) -> str | None:
    """A problem with value ``v`` for ``ps``, or None."""
    if v is None:
        return None if ps.optional else f"{ps.name} must be given"
    t = ps.type
    bounds = functools.partial(_bounds, ps, v)
    if t == "int":
        return bounds(v) if _is_int(v) else f"{ps.name} must be an integer, got {v!r}"
    if t == "float":
        return bounds(v) if _is_num(v) else f"{ps.name} must be a number, got {v!r}"
    if t == "bool":
        return None if isinstance(v, bool) else f"{ps.name} must be true or false, got {v!r}"
    if t == "str":
        return None if isinstance(v, str) else f"{ps.name} must be text, got {v!r}"
    if t == "choice":
        return None if v in ps.choices else f"{ps.name} must be one of {list(ps.choices)}"
    if t in ("size", "padding"):
        if t == "padding" and isinstance(v, str):
            return None if v in ("same", "valid") else f"{ps.name} must be 'same' or 'valid'"
        vals = v if isinstance(v, (list, tuple)) else [v]
        if not all(_is_int(x) for x in vals):
            return f"{ps.name} must be an integer or a list of integers, got {v!r}"
        if isinstance(v, (list, tuple)) and ps.length and len(v) != ps.length:
            return f"{ps.name} needs {ps.length} values, got {len(v)}"
        for x in vals:
            b = bounds(x)
            if b:
                return b
        return None
    if t in ("ints", "dims"):
        vals = v if isinstance(v, (list, tuple)) else ([v] if t == "dims" else None)
        if vals is None or not all(_is_int(x) for x in vals):
            return f"{ps.name} must be a list of integers, got {v!r}"
        return None
    if t == "floats":
        vals = v if isinstance(v, (list, tuple)) else [v]
        if not all(_is_num(x) for x in vals):
            return f"{ps.name} must be a number or a list of numbers, got {v!r}"
        return None
    return None


# ----------------------------------------------------------------------------- op spec
@dataclass(frozen=True)
class Counts:
    """What a node costs.

    Attributes:
        params: Learnable parameters.
        buffers: Non-learnable stored values (batch-norm running statistics ...).
        macs: Multiply-accumulates (convolution, linear only; see the module docstring).
        ops: Element-wise operations (activations, normalisation, pooling, merges).
    """

    params: int = 0
    buffers: int = 0
    macs: int = 0
    ops: int = 0


RFRule = Callable[[dict, list, list, Any], tuple["RF | None", list[str], list[str]]]


@dataclass(frozen=True)
class OpSpec:
    """Everything cnnviz knows about one operation kind.

    Attributes:
        kind: Registry key, e.g. ``conv2d``.
        family: Colour family: convolution, pooling, normalisation, activation, linear, merge,
            reshape, regularisation, opaque or input.
        doc: One line for the palette.
        params: Hyper-parameters in constructor order.
        arity: (minimum, maximum or None) number of tensor inputs.
        shape: ``(params, input_shapes) -> output_shape``; raises ShapeError / ParamError.
        counts: ``(params, input_shapes, output_shape) -> Counts``.
        rf: ``(params, input_fields, input_shapes, output_shape) -> (field, formulas, warnings)``.
        build: ``(params) -> nn.Module``.
        formulas: ``(params, input_shapes, output_shape, counts) -> {key: [lines]}``.
        modules: Module types traced to this kind.
    """

    kind: str
    family: str
    doc: str
    params: tuple[ParamSpec, ...]
    arity: tuple[int, int | None]
    shape: Callable[[dict, list], Any]
    counts: Callable[[dict, list, Any], Counts]
    rf: RFRule
    build: Callable[[dict], nn.Module]
    formulas: Callable[[dict, list, Any, Counts], dict[str, list[str]]] | None = None
    modules: tuple[type, ...] = field(default_factory=tuple)

    def defaults(self) -> dict[str, Any]:
        """The parameters that have defaults, with them."""
        return {p.name: p.default for p in self.params if p.default is not REQUIRED}

    def param(self, name: str) -> ParamSpec:
        """The spec of parameter ``name``."""
        for p in self.params:
            if p.name == name:
                return p
        raise KeyError(name)

    def resolve(self, params: dict[str, Any]) -> dict[str, Any]:
        """Defaults filled in, then checked.

        Raises:
            ParamError: The first problem found by :func:`check_params`.
        """
        # Checking is most of the cost of resolving, import and analysis resolve every node,
        # and graphs repeat parameter sets (DenseNet-201: 712 nodes, 129 distinct sets). The
        # text of plain JSON values identifies a set: one known to be valid is not re-checked.
        key = (self.kind, id(self.params), repr(params))
        if key not in _VALID:
            problems = check_params(self.kind, params)
            if problems:
                raise ParamError(problems[0])
            if len(_VALID) > 20_000:
                _VALID.clear()
            _VALID.add(key)
        full = self.defaults()
        full.update(params)
        return full


REGISTRY: dict[str, OpSpec] = {}
"""All kinds by name."""

_VALID: set[tuple[str, int, str]] = set()
"""(kind, id of its ParamSpecs, repr(params)) of parameter sets that passed check_params."""


def register(spec: OpSpec) -> OpSpec:
    """Add ``spec`` to :data:`REGISTRY` (a later registration replaces an earlier one)."""
    REGISTRY[spec.kind] = spec
    return spec


def get(kind: str) -> OpSpec:
    """The spec of ``kind``.

    Raises:
        CnnvizError: Unknown kind, with suggestions.
    """
    try:
        return REGISTRY[kind]
    except KeyError:
        close = suggest_kinds(kind)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise CnnvizError(f"unknown operation kind {kind!r}{hint}") from None


def suggest_kinds(kind: str) -> list[str]:
    """Registered kinds that look like ``kind``."""
    return difflib.get_close_matches(kind, list(REGISTRY), n=3, cutoff=0.6)


def check_params(kind: str, params: dict[str, Any]) -> list[str]:
    """Every problem with ``params`` for ``kind``: unknown, missing, mistyped, out of bounds."""
    spec = REGISTRY.get(kind)
    if spec is None:
        return [f"unknown kind {kind!r}"]
    problems = []
    known = _param_names(spec)
    for name in params:
        if name not in known:
            close = difflib.get_close_matches(name, list(known), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            problems.append(f"{kind} has no parameter {name!r}{hint}")
    for ps in spec.params:
        v = params.get(ps.name, _MISSING)
        if v is _MISSING:
            if ps.default is REQUIRED:
                problems.append(f"parameter {ps.name!r} must be given ({ps.doc})")
            continue
        bad = _check_value(ps, v)
        if bad:
            problems.append(bad)
    return problems


_MISSING = object()


_PARAM_NAMES: dict[int, tuple[OpSpec, frozenset[str]]] = {}


def _param_names(spec: OpSpec) -> frozenset[str]:
    """The parameter names of ``spec`` (cached: check_params runs for every node)."""
    hit = _PARAM_NAMES.get(id(spec))
    if hit is None or hit[0] is not spec:
        hit = _PARAM_NAMES[id(spec)] = (spec, frozenset(p.name for p in spec.params))
    return hit[1]


# ------------------------------------------------------------------- formula helpers
def _f_pointwise(p: dict, ins: list, out: Any, c: Counts) -> dict[str, list[str]]:
    f = {"output_shape": [f"output = input = {shape_str(out)}"]}
    if c.ops:
        f["ops"] = [f"ops = {_n(c.ops)} element-wise"]
    return f


def _numel(shape: Any) -> int:
    if isinstance(shape, MultiShape):
        return sum(_numel(s) for s in shape)
    return prod(shape)


def _f_common(p: dict, ins: list, out: Any, c: Counts) -> dict[str, list[str]]:
    return {"output_shape": [f"output = {shape_str(out)}"]}


# ------------------------------------------------------------ convolution and pooling core
def _need_rank(shape: Any, rank: int | tuple[int, ...], what: str) -> Shape:
    ranks = (rank,) if isinstance(rank, int) else rank
    if isinstance(shape, MultiShape) or len(shape) not in ranks:
        want = " or ".join(f"{r}-D" for r in ranks)
        raise ShapeError(
            f"{what} needs a {want} input per sample",
            expected=" or ".join(
                {1: "(C,)", 2: "(C, L)", 3: "(C, H, W)", 4: "(C, D, H, W)"}.get(r, f"{r}-D")
                for r in ranks
            ),
            actual=shape_str(shape),
            fix="flatten or reshape the input first" if len(shape) > max(ranks) else None,
        )
    return shape


@dataclass(frozen=True)
class _Window:
    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    pad_lo: tuple[int, ...]
    pad_total: tuple[int, ...]
    dilation: tuple[int, ...]


def _conv_window(p: dict, n: int, in_spatial: Shape) -> _Window:
    k = _tuple(p["kernel_size"], n, "kernel_size")
    s = _tuple(p.get("stride", 1), n, "stride")
    d = _tuple(p.get("dilation", 1), n, "dilation")
    pad = p.get("padding", 0)
    if pad == "valid":
        lo = tot = (0,) * n
    elif pad == "same":
        if any(x != 1 for x in s):
            raise ParamError(
                "padding='same' needs stride 1",
                actual=f"stride={list(s)}",
                expected="stride=1",
                fix="give the padding as a number, e.g. padding=(kernel_size-1)//2",
            )
        tot = tuple(d[a] * (k[a] - 1) for a in range(n))
        lo = tuple(t // 2 for t in tot)
    else:
        lo = _tuple(pad, n, "padding")
        tot = tuple(2 * x for x in lo)
    return _Window(k, s, lo, tot, d)


def _window_out(
    what: str, w: _Window, in_spatial: Shape, ceil_mode: bool = False
) -> tuple[int, ...]:
    out = []
    for a, size in enumerate(in_spatial):
        eff = w.dilation[a] * (w.kernel[a] - 1) + 1
        span = size + w.pad_total[a] - eff
        if ceil_mode:
            o = -(-span // w.stride[a]) + 1
            # PyTorch drops a last window that would start entirely in the right padding.
            if (o - 1) * w.stride[a] >= size + w.pad_lo[a]:
                o -= 1
        else:
            o = span // w.stride[a] + 1
        if o < 1:
            keep = (eff - 1) // 2
            raise ShapeError(
                f"the {what} window ({eff} wide on axis {_axes(len(in_spatial))[a]}) is larger "
                f"than the padded input ({size} + {w.pad_total[a]})",
                expected=f"at least {eff}",
                actual=size + w.pad_total[a],
                fix=f"padding={keep} keeps {'x'.join(str(s) for s in in_spatial)}"
                if w.stride[a] == 1 and eff % 2 == 1
                else "use a smaller kernel or more padding",
            )
        out.append(o)
    return tuple(out)


def _window_lines(w: _Window, in_spatial: Shape, out_spatial: Shape, ceil: bool) -> list[str]:
    lines = []
    fl = "ceil" if ceil else "floor"
    for a, name in enumerate(_axes(len(in_spatial))):
        k, s, d = w.kernel[a], w.stride[a], w.dilation[a]
        pt = w.pad_total[a]
        pad_txt = f"2*{w.pad_lo[a]}" if pt == 2 * w.pad_lo[a] else f"{pt}"
        if d == 1:
            body = f"({in_spatial[a]} - {k} + {pad_txt})/{s}"
        else:
            body = f"({in_spatial[a]} + {pad_txt} - {d}*({k}-1) - 1)/{s}"
        lines.append(f"{name}_out = {fl}({body}) + 1 = {out_spatial[a]}")
    if len(lines) == 2 and lines[0][1:] == lines[1][1:]:
        lines = ["H_out = W_out" + lines[0][5:]]
    return lines


# ------------------------------------------------------------------------- convolution
def _conv_params(n: int) -> tuple[ParamSpec, ...]:
    return (
        ParamSpec("in_channels", "int", REQUIRED, "input channels C_in", minimum=1),
        ParamSpec(
            "out_channels", "int", REQUIRED, "output channels (number of filters)", minimum=1
        ),
        ParamSpec("kernel_size", "size", REQUIRED, "filter size", minimum=1, length=n),
        ParamSpec("stride", "size", 1, "step between windows", minimum=1, length=n),
        ParamSpec(
            "padding",
            "padding",
            0,
            "zeros added on each side, or 'same'/'valid'",
            minimum=0,
            length=n,
        ),
        ParamSpec("dilation", "size", 1, "spacing between filter taps", minimum=1, length=n),
        ParamSpec("groups", "int", 1, "channel groups (in_channels for depthwise)", minimum=1),
        ParamSpec("bias", "bool", True, "add a learned bias per output channel"),
        ParamSpec(
            "padding_mode",
            "choice",
            "zeros",
            "how the border is padded",
            choices=("zeros", "reflect", "replicate", "circular"),
        ),
    )


def _check_groups(p: dict, cin_key: str = "in_channels", cout_key: str = "out_channels") -> None:
    g = p.get("groups", 1)
    for key in (cin_key, cout_key):
        if p[key] % g:
            raise ParamError(
                f"{key}={p[key]} is not divisible by groups={g}",
                fix=f"choose groups dividing both {p[cin_key]} and {p[cout_key]}",
            )


def _conv_shape(n: int) -> Callable[[dict, list], Shape]:
    def rule(p: dict, ins: list) -> Shape:
        x = _need_rank(ins[0], n + 1, f"conv{n}d")
        if x[0] != p["in_channels"]:
            raise ShapeError(
                f"the input has {x[0]} channels but in_channels={p['in_channels']}",
                expected=p["in_channels"],
                actual=x[0],
                fix=f"in_channels should be {x[0]}",
            )
        _check_groups(p)
        w = _conv_window(p, n, x[1:])
        return (p["out_channels"], *_window_out("convolution", w, x[1:]))

    return rule


def _conv_counts(p: dict, ins: list, out: Shape) -> Counts:
    n = len(out) - 1
    k = prod(_tuple(p["kernel_size"], n))
    cin_g = p["in_channels"] // p.get("groups", 1)
    bias = p["out_channels"] if p.get("bias", True) else 0
    return Counts(
        params=p["out_channels"] * cin_g * k + bias,
        macs=cin_g * k * p["out_channels"] * prod(out[1:]),
        ops=prod(out) if bias else 0,
    )


def _conv_rf(p: dict, rfs: list, ins: list, out: Shape):
    n = len(ins[0]) - 1
    w = _conv_window(p, n, ins[0][1:])
    return rf_window(rfs[0], ins[0], w.kernel, w.stride, w.pad_lo, w.dilation)


def _conv_formulas(p: dict, ins: list, out: Shape, c: Counts) -> dict[str, list[str]]:
    n = len(out) - 1
    w = _conv_window(p, n, ins[0][1:])
    g = p.get("groups", 1)
    cin, cout = p["in_channels"], p["out_channels"]
    cin_txt = f"{cin}" if g == 1 else f"({cin}/{g})"
    ks = "*".join(str(k) for k in w.kernel)
    bias = " + 1" if p.get("bias", True) else ""
    return {
        "output_shape": [
            f"C_out = out_channels = {cout}",
            *_window_lines(w, ins[0][1:], out[1:], False),
        ],
        "params": [
            "params = C_out*(C_in/groups*"
            + "*".join(f"K_{a.lower()}" for a in _axes(n))
            + (" + 1)" if bias else ")"),
            f"params = {cout}*({cin_txt}*{ks}{bias}) = {_n(c.params)}",
        ],
        "macs": [
            f"MACs = ({cin}/{g})*{ks}*{cout}*{'*'.join(str(s) for s in out[1:])} = {_n(c.macs)}"
        ],
    }


def _build_conv(n: int) -> Callable[[dict], nn.Module]:
    cls = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}[n]

    def build(p: dict) -> nn.Module:
        pad = p.get("padding", 0)
        return cls(
            p["in_channels"],
            p["out_channels"],
            _size_arg(p["kernel_size"]),
            stride=_size_arg(p.get("stride", 1)),
            padding=pad if isinstance(pad, str) else _size_arg(pad),
            dilation=_size_arg(p.get("dilation", 1)),
            groups=p.get("groups", 1),
            bias=p.get("bias", True),
            padding_mode=p.get("padding_mode", "zeros"),
        )

    return build


def _size_arg(v: Any) -> Any:
    return tuple(v) if isinstance(v, list) else v


def _list_or_int(v: Any) -> Any:
    """Module attribute (often a tuple of equal ints) as JSON: a single int when uniform."""
    if isinstance(v, (tuple, list)):
        vals = [int(x) if not isinstance(x, str) else x for x in v]
        return vals[0] if len(set(vals)) == 1 else vals
    return v


def _conv_from(m: nn.Module) -> dict[str, Any]:
    return {
        "in_channels": m.in_channels,
        "out_channels": m.out_channels,
        "kernel_size": _list_or_int(m.kernel_size),
        "stride": _list_or_int(m.stride),
        "padding": m.padding if isinstance(m.padding, str) else _list_or_int(m.padding),
        "dilation": _list_or_int(m.dilation),
        "groups": m.groups,
        "bias": m.bias is not None,
        "padding_mode": m.padding_mode,
    }


for _n_dim in (1, 2, 3):
    register(
        OpSpec(
            kind=f"conv{_n_dim}d",
            family="convolution",
            doc=f"{_n_dim}-D convolution: learned filters slid over the input",
            params=_conv_params(_n_dim),
            arity=(1, 1),
            shape=_conv_shape(_n_dim),
            counts=_conv_counts,
            rf=_conv_rf,
            build=_build_conv(_n_dim),
            formulas=_conv_formulas,
            modules=({1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}[_n_dim],),
        )
    )


# ---------------------------------------------------------------- transposed convolution
def _convt_window(p: dict, n: int) -> tuple[tuple[int, ...], ...]:
    return (
        _tuple(p["kernel_size"], n, "kernel_size"),
        _tuple(p.get("stride", 1), n, "stride"),
        _tuple(p.get("padding", 0), n, "padding"),
        _tuple(p.get("output_padding", 0), n, "output_padding"),
        _tuple(p.get("dilation", 1), n, "dilation"),
    )


def _convt_shape(n: int) -> Callable[[dict, list], Shape]:
    def rule(p: dict, ins: list) -> Shape:
        x = _need_rank(ins[0], n + 1, f"conv_transpose{n}d")
        if x[0] != p["in_channels"]:
            raise ShapeError(
                f"the input has {x[0]} channels but in_channels={p['in_channels']}",
                expected=p["in_channels"],
                actual=x[0],
                fix=f"in_channels should be {x[0]}",
            )
        _check_groups(p)
        k, s, pad, op, d = _convt_window(p, n)
        out = []
        for a in range(n):
            if op[a] >= max(s[a], d[a]):
                raise ParamError(
                    f"output_padding={op[a]} must be smaller than stride or dilation",
                    fix="use output_padding < stride",
                )
            o = (x[1 + a] - 1) * s[a] - 2 * pad[a] + d[a] * (k[a] - 1) + op[a] + 1
            if o < 1:
                raise ShapeError(
                    "padding removes the whole output",
                    expected="positive size",
                    actual=o,
                    fix="reduce the padding",
                )
            out.append(o)
        return (p["out_channels"], *out)

    return rule


def _convt_counts(p: dict, ins: list, out: Shape) -> Counts:
    n = len(out) - 1
    k = prod(_tuple(p["kernel_size"], n))
    cout_g = p["out_channels"] // p.get("groups", 1)
    bias = p["out_channels"] if p.get("bias", True) else 0
    return Counts(
        params=p["in_channels"] * cout_g * k + bias,
        macs=p["in_channels"] * cout_g * k * prod(ins[0][1:]),
        ops=prod(out) if bias else 0,
    )


def _convt_rf(p: dict, rfs: list, ins: list, out: Shape):
    n = len(out) - 1
    k, s, pad, _, d = _convt_window(p, n)
    return rf_transposed(rfs[0], ins[0], k, s, pad, d)


def _convt_formulas(p: dict, ins: list, out: Shape, c: Counts) -> dict[str, list[str]]:
    n = len(out) - 1
    k, s, pad, op, d = _convt_window(p, n)
    lines = [f"C_out = out_channels = {p['out_channels']}"]
    for a, name in enumerate(_axes(n)):
        dil = f"{d[a]}*({k[a]}-1)" if d[a] != 1 else f"({k[a]}-1)"
        lines.append(
            f"{name}_out = ({ins[0][1 + a]} - 1)*{s[a]} - 2*{pad[a]} + {dil} + {op[a]} + 1 "
            f"= {out[1 + a]}"
        )
    g = p.get("groups", 1)
    ks = "*".join(str(x) for x in k)
    bias = " + 1" if p.get("bias", True) else ""
    cin, cout = p["in_channels"], p["out_channels"]
    return {
        "output_shape": lines,
        "params": [
            f"params = C_in*(C_out/groups)*K + bias = {cin}*({cout}/{g})*{ks}"
            + (f" + {cout}" if bias else "")
            + f" = {_n(c.params)}"
        ],
        "macs": [
            f"MACs = {cin}*({cout}/{g})*{ks}*{'*'.join(str(v) for v in ins[0][1:])} = {_n(c.macs)}"
        ],
    }


def _build_convt(n: int) -> Callable[[dict], nn.Module]:
    cls = {1: nn.ConvTranspose1d, 2: nn.ConvTranspose2d}[n]

    def build(p: dict) -> nn.Module:
        return cls(
            p["in_channels"],
            p["out_channels"],
            _size_arg(p["kernel_size"]),
            stride=_size_arg(p.get("stride", 1)),
            padding=_size_arg(p.get("padding", 0)),
            output_padding=_size_arg(p.get("output_padding", 0)),
            groups=p.get("groups", 1),
            bias=p.get("bias", True),
            dilation=_size_arg(p.get("dilation", 1)),
        )

    return build


def _convt_from(m: nn.Module) -> dict[str, Any]:
    return {
        "in_channels": m.in_channels,
        "out_channels": m.out_channels,
        "kernel_size": _list_or_int(m.kernel_size),
        "stride": _list_or_int(m.stride),
        "padding": _list_or_int(m.padding),
        "output_padding": _list_or_int(m.output_padding),
        "dilation": _list_or_int(m.dilation),
        "groups": m.groups,
        "bias": m.bias is not None,
    }


for _n_dim in (1, 2):
    register(
        OpSpec(
            kind=f"conv_transpose{_n_dim}d",
            family="convolution",
            doc="transposed convolution: learned upsampling",
            params=(
                *_conv_params(_n_dim)[:3],
                ParamSpec("stride", "size", 1, "upsampling factor", minimum=1, length=_n_dim),
                ParamSpec(
                    "padding",
                    "size",
                    0,
                    "rows/columns cropped from each side",
                    minimum=0,
                    length=_n_dim,
                ),
                ParamSpec(
                    "output_padding",
                    "size",
                    0,
                    "extra rows/columns on one side",
                    minimum=0,
                    length=_n_dim,
                ),
                ParamSpec(
                    "dilation", "size", 1, "spacing between filter taps", minimum=1, length=_n_dim
                ),
                ParamSpec("groups", "int", 1, "channel groups", minimum=1),
                ParamSpec("bias", "bool", True, "add a learned bias per output channel"),
            ),
            arity=(1, 1),
            shape=_convt_shape(_n_dim),
            counts=_convt_counts,
            rf=_convt_rf,
            build=_build_convt(_n_dim),
            formulas=_convt_formulas,
            modules=({1: nn.ConvTranspose1d, 2: nn.ConvTranspose2d}[_n_dim],),
        )
    )


# ------------------------------------------------------------------------------ linear
def _linear_shape(p: dict, ins: list) -> Shape:
    x = ins[0]
    if isinstance(x, MultiShape) or len(x) == 0:
        raise ShapeError("linear needs a tensor input", actual=shape_str(x))
    if x[-1] != p["in_features"]:
        fix = f"in_features should be {x[-1]}"
        if len(x) > 1:
            fix += f", or flatten the {shape_str(x)} input first (giving {prod(x)} features)"
            if prod(x) == p["in_features"]:
                fix = f"flatten the {shape_str(x)} input first (it has {prod(x)} features)"
        raise ShapeError(
            f"linear expects {p['in_features']} input features but gets {x[-1]}",
            expected=p["in_features"],
            actual=x[-1],
            fix=fix,
        )
    return (*x[:-1], p["out_features"])


def _linear_counts(p: dict, ins: list, out: Shape) -> Counts:
    positions = prod(out[:-1])
    bias = p["out_features"] if p.get("bias", True) else 0
    return Counts(
        params=p["in_features"] * p["out_features"] + bias,
        macs=p["in_features"] * p["out_features"] * positions,
        ops=bias * positions,
    )


def _linear_formulas(p: dict, ins: list, out: Shape, c: Counts) -> dict[str, list[str]]:
    i, o = p["in_features"], p["out_features"]
    pos = prod(out[:-1])
    bias = p.get("bias", True)
    return {
        "output_shape": [
            f"output = {shape_str(out[:-1] + (o,))} (last axis in_features -> out_features)"
        ],
        "params": [
            "params = in*out + out" if bias else "params = in*out",
            f"params = {i}*{o}" + (f" + {o}" if bias else "") + f" = {_n(c.params)}",
        ],
        "macs": [
            f"MACs = {i}*{o}" + (f"*{pos} positions" if pos != 1 else "") + f" = {_n(c.macs)}"
        ],
    }


register(
    OpSpec(
        kind="linear",
        family="linear",
        doc="fully connected layer: every input to every output",
        params=(
            ParamSpec("in_features", "int", REQUIRED, "input features", minimum=1),
            ParamSpec("out_features", "int", REQUIRED, "output features", minimum=1),
            ParamSpec("bias", "bool", True, "add a learned bias"),
        ),
        arity=(1, 1),
        shape=_linear_shape,
        counts=_linear_counts,
        rf=_rf_along(lambda p, s: {len(s) - 1}),
        build=lambda p: nn.Linear(p["in_features"], p["out_features"], bias=p.get("bias", True)),
        formulas=_linear_formulas,
        modules=(nn.Linear,),
    )
)


# ----------------------------------------------------------------------------- pooling
def _pool_window(p: dict, n: int) -> _Window:
    k = _tuple(p["kernel_size"], n, "kernel_size")
    s = p.get("stride")
    s = k if s is None or s == [] else _tuple(s, n, "stride")
    lo = _tuple(p.get("padding", 0), n, "padding")
    d = _tuple(p.get("dilation", 1), n, "dilation")
    for a in range(n):
        if lo[a] * 2 > k[a]:
            raise ParamError(
                f"padding={lo[a]} is more than half the kernel size {k[a]}",
                fix=f"use padding <= {k[a] // 2}",
            )
    return _Window(k, s, lo, tuple(2 * x for x in lo), d)


def _pool_shape(n: int, name: str) -> Callable[[dict, list], Any]:
    def rule(p: dict, ins: list) -> Any:
        x = _need_rank(ins[0], (n + 1, n) if n == 2 else n + 1, name)
        w = _pool_window(p, n)
        out = (*x[:-n], *_window_out("pooling", w, x[-n:], p.get("ceil_mode", False)))
        if p.get("return_indices"):
            return MultiShape((out, out))
        return out

    return rule


def _first(out: Any) -> Shape:
    return out[0] if isinstance(out, MultiShape) else out


def _pool_rf(n: int) -> RFRule:
    def rule(p: dict, rfs: list, ins: list, out: Any):
        w = _pool_window(p, n)
        return rf_window(rfs[0], ins[0], w.kernel, w.stride, w.pad_lo, w.dilation)

    return rule


def _pool_formulas(n: int) -> Callable[[dict, list, Any, Counts], dict[str, list[str]]]:
    def f(p: dict, ins: list, out: Any, c: Counts) -> dict[str, list[str]]:
        w = _pool_window(p, n)
        o = _first(out)
        ceil = p.get("ceil_mode", False)
        ks = "*".join(str(k) for k in w.kernel)
        return {
            "output_shape": [
                f"C_out = C_in = {o[0]}",
                *_window_lines(w, ins[0][-n:], o[-n:], ceil),
            ],
            "ops": [f"ops = {ks} per output * {_n(prod(o))} outputs = {_n(c.ops)}"],
        }

    return f


def _pool_from(m: nn.Module) -> dict[str, Any]:
    d = {
        "kernel_size": _list_or_int(m.kernel_size),
        "stride": _list_or_int(m.stride),
        "padding": _list_or_int(m.padding),
        "ceil_mode": bool(m.ceil_mode),
    }
    if hasattr(m, "dilation"):
        d["dilation"] = _list_or_int(m.dilation)
        d["return_indices"] = bool(m.return_indices)
    if hasattr(m, "count_include_pad"):
        d["count_include_pad"] = bool(m.count_include_pad)
        if hasattr(m, "divisor_override"):
            d["divisor_override"] = m.divisor_override
    return d


for _n_dim in (1, 2):
    _win = (
        ParamSpec("kernel_size", "size", REQUIRED, "window size", minimum=1, length=_n_dim),
        ParamSpec(
            "stride",
            "size",
            None,
            "step (default: kernel_size)",
            minimum=1,
            optional=True,
            length=_n_dim,
        ),
        ParamSpec("padding", "size", 0, "implicit padding on each side", minimum=0, length=_n_dim),
    )
    _ceil = ParamSpec("ceil_mode", "bool", False, "round the output size up, not down")
    register(
        OpSpec(
            kind=f"max_pool{_n_dim}d",
            family="pooling",
            doc="maximum over each window",
            params=(
                *_win,
                ParamSpec(
                    "dilation", "size", 1, "spacing inside the window", minimum=1, length=_n_dim
                ),
                ParamSpec("return_indices", "bool", False, "also return argmax (for max_unpool)"),
                _ceil,
            ),
            arity=(1, 1),
            shape=_pool_shape(_n_dim, f"max_pool{_n_dim}d"),
            counts=(
                lambda n: (
                    lambda p, i, o: Counts(ops=prod(_tuple(p["kernel_size"], n)) * prod(_first(o)))
                )
            )(_n_dim),
            rf=_pool_rf(_n_dim),
            build=(
                lambda cls: (
                    lambda p: cls(
                        _size_arg(p["kernel_size"]),
                        stride=_size_arg(p.get("stride")),
                        padding=_size_arg(p.get("padding", 0)),
                        dilation=_size_arg(p.get("dilation", 1)),
                        return_indices=p.get("return_indices", False),
                        ceil_mode=p.get("ceil_mode", False),
                    )
                )
            )({1: nn.MaxPool1d, 2: nn.MaxPool2d}[_n_dim]),
            formulas=_pool_formulas(_n_dim),
            modules=({1: nn.MaxPool1d, 2: nn.MaxPool2d}[_n_dim],),
        )
    )
    register(
        OpSpec(
            kind=f"avg_pool{_n_dim}d",
            family="pooling",
            doc="mean over each window",
            params=(
                *_win,
                _ceil,
                ParamSpec("count_include_pad", "bool", True, "padding zeros count in the mean"),
                *(
                    (
                        ParamSpec(
                            "divisor_override",
                            "int",
                            None,
                            "divide by this instead",
                            minimum=1,
                            optional=True,
                        ),
                    )
                    if _n_dim == 2
                    else ()
                ),
            ),
            arity=(1, 1),
            shape=_pool_shape(_n_dim, f"avg_pool{_n_dim}d"),
            counts=(
                lambda n: lambda p, i, o: Counts(ops=prod(_tuple(p["kernel_size"], n)) * prod(o))
            )(_n_dim),
            rf=_pool_rf(_n_dim),
            build=(
                lambda n: (
                    lambda p: (nn.AvgPool1d if n == 1 else nn.AvgPool2d)(
                        _size_arg(p["kernel_size"]),
                        stride=_size_arg(p.get("stride")),
                        padding=_size_arg(p.get("padding", 0)),
                        ceil_mode=p.get("ceil_mode", False),
                        count_include_pad=p.get("count_include_pad", True),
                        **({"divisor_override": p.get("divisor_override")} if n == 2 else {}),
                    )
                )
            )(_n_dim),
            formulas=_pool_formulas(_n_dim),
            modules=({1: nn.AvgPool1d, 2: nn.AvgPool2d}[_n_dim],),
        )
    )


# --------------------------------------------------------------------- adaptive pooling
def _adaptive_out(p: dict, x: Shape, n: int) -> tuple[int, ...]:
    o = p["output_size"]
    o = _tuple(o, n, "output_size")
    return tuple(x[-n + a] if o[a] is None else o[a] for a in range(n))


def _adaptive_shape(n: int, name: str) -> Callable[[dict, list], Shape]:
    def rule(p: dict, ins: list) -> Any:
        x = _need_rank(ins[0], (n + 1, n) if n == 2 else n + 1, name)
        out = (*x[:-n], *_adaptive_out(p, x, n))
        if p.get("return_indices"):
            return MultiShape((out, out))
        return out

    return rule


def _adaptive_rf(n: int) -> RFRule:
    def rule(p: dict, rfs: list, ins: list, out: Any):
        x = ins[0]
        o = _adaptive_out(p, x, n)
        if all(v == 1 for v in o):
            return _rf_global(p, rfs, ins, out)
        # Exact when the input divides evenly; otherwise windows vary, we take the largest.
        k = tuple(-(-x[-n + a] // o[a]) for a in range(n))
        s = tuple(x[-n + a] / o[a] for a in range(n))
        s = tuple(_num(v) for v in s)
        rf, lines, warns = rf_window(rfs[0], x, k, s, (0,) * n, (1,) * n)
        if any(x[-n + a] % o[a] for a in range(n)):
            warns = [*warns, "adaptive pooling with uneven windows: field is approximate"]
        return rf, lines, warns

    return rule


def _adaptive_formulas(p: dict, ins: list, out: Any, c: Counts) -> dict[str, list[str]]:
    o = _first(out)
    f = {
        "output_shape": [f"output = {shape_str(o)} (output_size fixed, any input size)"],
        "ops": [f"ops = one per input element = {_n(c.ops)}"],
    }
    return f


for _n_dim in (1, 2):
    for _how, _cls in (
        ("avg", {1: nn.AdaptiveAvgPool1d, 2: nn.AdaptiveAvgPool2d}[_n_dim]),
        ("max", {1: nn.AdaptiveMaxPool1d, 2: nn.AdaptiveMaxPool2d}[_n_dim]),
    ):
        register(
            OpSpec(
                kind=f"adaptive_{_how}_pool{_n_dim}d",
                family="pooling",
                doc=f"{_how} pooling to a fixed output size (1 = global)",
                params=(
                    ParamSpec(
                        "output_size",
                        "size",
                        1,
                        "output size (1 = global pooling)",
                        minimum=1,
                        length=_n_dim,
                    ),
                    *(
                        (ParamSpec("return_indices", "bool", False, "also return argmax"),)
                        if _how == "max"
                        else ()
                    ),
                ),
                arity=(1, 1),
                shape=_adaptive_shape(_n_dim, f"adaptive_{_how}_pool{_n_dim}d"),
                counts=lambda p, i, o: Counts(ops=prod(i[0])),
                rf=_adaptive_rf(_n_dim),
                build=(
                    lambda cls, how: (
                        lambda p: cls(
                            _size_arg(p.get("output_size", 1)),
                            **(
                                {"return_indices": p.get("return_indices", False)}
                                if how == "max"
                                else {}
                            ),
                        )
                    )
                )(_cls, _how),
                formulas=_adaptive_formulas,
                modules=(_cls,),
            )
        )

for _how, _cls in (("avg", nn.AdaptiveAvgPool2d), ("max", nn.AdaptiveMaxPool2d)):
    register(
        OpSpec(
            kind=f"global_{_how}_pool2d",
            family="pooling",
            doc=f"global {_how} pooling: one value per channel, shape (C, 1, 1)",
            params=(),
            arity=(1, 1),
            shape=lambda p, i: (*_need_rank(i[0], 3, "global pooling")[:1], 1, 1),
            counts=lambda p, i, o: Counts(ops=prod(i[0])),
            rf=_rf_global,
            build=(lambda cls: lambda p: cls(1))(_cls),
            formulas=_adaptive_formulas,
        )
    )


# --------------------------------------------------------------------------- max_unpool
def _unpool_shape(p: dict, ins: list) -> Shape:
    x = _need_rank(ins[0], (3, 2), "max_unpool2d")
    if len(ins) > 1 and ins[1] != x:
        raise ShapeError(
            "the indices must have the input's shape",
            expected=shape_str(x),
            actual=shape_str(ins[1]),
        )
    k = _tuple(p["kernel_size"], 2)
    s = _tuple(p.get("stride") or p["kernel_size"], 2)
    pad = _tuple(p.get("padding", 0), 2)
    return (*x[:-2], *((x[-2 + a] - 1) * s[a] - 2 * pad[a] + k[a] for a in range(2)))


def _unpool_rf(p: dict, rfs: list, ins: list, out: Any):
    k = _tuple(p["kernel_size"], 2)
    s = _tuple(p.get("stride") or p["kernel_size"], 2)
    return rf_transposed(rfs[0], ins[0], k, s, _tuple(p.get("padding", 0), 2), (1, 1))


register(
    OpSpec(
        kind="max_unpool2d",
        family="pooling",
        doc="puts values back at the max positions recorded by max_pool2d(return_indices=True)",
        params=(
            ParamSpec(
                "kernel_size",
                "size",
                REQUIRED,
                "window of the matching max pool",
                minimum=1,
                length=2,
            ),
            ParamSpec(
                "stride",
                "size",
                None,
                "stride of the matching max pool",
                minimum=1,
                optional=True,
                length=2,
            ),
            ParamSpec(
                "padding", "size", 0, "padding of the matching max pool", minimum=0, length=2
            ),
        ),
        arity=(2, 2),
        shape=_unpool_shape,
        counts=lambda p, i, o: Counts(ops=prod(o)),
        rf=_unpool_rf,
        build=lambda p: nn.MaxUnpool2d(
            _size_arg(p["kernel_size"]), _size_arg(p.get("stride")), _size_arg(p.get("padding", 0))
        ),
        formulas=_f_common,
        modules=(nn.MaxUnpool2d,),
    )
)


# ----------------------------------------------------------------------------- upsample
def _upsample_shape(p: dict, ins: list) -> Shape:
    x = ins[0]
    if isinstance(x, MultiShape) or len(x) < 2:
        raise ShapeError(
            "upsample needs a (C, L), (C, H, W) or (C, D, H, W) input", actual=shape_str(x)
        )
    n = len(x) - 1
    size, scale = p.get("size"), p.get("scale_factor")
    if (size is None) == (scale is None):
        raise ParamError(
            "give exactly one of size and scale_factor",
            fix="set scale_factor=2 (or a size) and leave the other empty",
        )
    if size is not None:
        return (x[0], *_tuple(size, n, "size"))
    sf = _tuple(scale, n, "scale_factor")
    return (x[0], *(int(math.floor(x[1 + a] * sf[a])) for a in range(n)))


def _upsample_rf(p: dict, rfs: list, ins: list, out: Any):
    n = len(out) - 1
    factors = tuple(out[1 + a] / ins[0][1 + a] for a in range(n))
    # Nearest copies one input per output: a window of ~1 input unit; (bi)linear blends 2.
    k = tuple(1 if p.get("mode", "nearest") == "nearest" else 2 for _ in range(n))
    kk = tuple(max(1, round(k[a] * factors[a])) for a in range(n))
    return rf_transposed(rfs[0], ins[0], kk, factors, (0,) * n, (1,) * n)


_UPSAMPLE_MODES = ("nearest", "linear", "bilinear", "bicubic", "trilinear", "nearest-exact")
register(
    OpSpec(
        kind="upsample",
        family="reshape",
        doc="resize by interpolation (no learned weights)",
        params=(
            ParamSpec(
                "size", "size", None, "output size (or give scale_factor)", minimum=1, optional=True
            ),
            ParamSpec(
                "scale_factor", "floats", 2.0, "multiplier of the spatial size", optional=True
            ),
            ParamSpec("mode", "choice", "nearest", "interpolation", choices=_UPSAMPLE_MODES),
            ParamSpec(
                "align_corners", "bool", None, "align corner pixels (linear modes)", optional=True
            ),
        ),
        arity=(1, 1),
        shape=_upsample_shape,
        counts=lambda p, i, o: Counts(
            ops=prod(o) * (1 if p.get("mode", "nearest").startswith("nearest") else 4)
        ),
        rf=_upsample_rf,
        build=lambda p: nn.Upsample(
            size=_size_arg(p.get("size")),
            scale_factor=None if p.get("size") is not None else _size_arg(p.get("scale_factor")),
            mode=p.get("mode", "nearest"),
            align_corners=p.get("align_corners"),
        ),
        formulas=lambda p, i, o, c: {
            "output_shape": [
                f"{a}_out = "
                + (
                    f"size = {o[1 + k]}"
                    if p.get("size") is not None
                    else f"floor({i[0][1 + k]}*{_n(_tuple(p['scale_factor'], len(o) - 1)[k])})"
                    f" = {o[1 + k]}"
                )
                for k, a in enumerate(_axes(len(o) - 1))
            ]
        },
        modules=(nn.Upsample,),
    )
)


# ----------------------------------------------------------------------------- padding
def _pad4(p: dict) -> tuple[int, int, int, int]:
    v = p.get("padding", 1)
    if isinstance(v, (list, tuple)):
        if len(v) == 2:
            return (v[0], v[0], v[1], v[1])
        if len(v) != 4:
            raise ParamError("padding needs 1, 2 or 4 values (left, right, top, bottom)")
        return tuple(v)
    return (v, v, v, v)


def _zero_pad_shape(p: dict, ins: list) -> Shape:
    x = _need_rank(ins[0], (3, 2), "zero_pad2d")
    left, right, top, bottom = _pad4(p)
    h, w = x[-2] + top + bottom, x[-1] + left + right
    if h < 1 or w < 1:
        raise ShapeError("negative padding removes the whole input", actual=shape_str(x))
    return (*x[:-2], h, w)


register(
    OpSpec(
        kind="zero_pad2d",
        family="reshape",
        doc="add zeros around the border",
        params=(ParamSpec("padding", "size", 1, "left, right, top, bottom (or one for all)"),),
        arity=(1, 1),
        shape=_zero_pad_shape,
        counts=lambda p, i, o: Counts(),
        rf=lambda p, r, i, o: rf_window(
            r[0], i[0], (1, 1), (1, 1), (_pad4(p)[2], _pad4(p)[0]), (1, 1)
        ),
        build=lambda p: nn.ZeroPad2d(_size_arg(list(_pad4(p)))),
        formulas=lambda p, i, o, c: {
            "output_shape": [
                f"H_out = {i[0][-2]} + {_pad4(p)[2]} + {_pad4(p)[3]} = {o[-2]}",
                f"W_out = {i[0][-1]} + {_pad4(p)[0]} + {_pad4(p)[1]} = {o[-1]}",
            ]
        },
        modules=(nn.ZeroPad2d,),
    )
)


# ------------------------------------------------------------------- general padding
_PAD_MODES = ("constant", "reflect", "replicate", "circular")


class Pad(nn.Module):
    """``F.pad(x, pad, mode, value)`` as a module (padding of any dimensions, channels too).

    Args:
        pad: (before, after) pairs from the last dimension backwards, as in ``F.pad``:
            ``(left, right, top, bottom, front, back)``; negative values crop.
        mode: ``constant``, ``reflect``, ``replicate`` or ``circular``.
        value: Fill value of ``constant`` padding.
    """

    def __init__(self, pad: Sequence[int], mode: str = "constant", value: float = 0.0) -> None:
        super().__init__()
        self.pad, self.mode, self.value = tuple(int(p) for p in pad), mode, float(value)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "constant":
            return F.pad(x, self.pad, "constant", self.value)
        return F.pad(x, self.pad, self.mode)

    def extra_repr(self) -> str:
        return f"pad={self.pad}, mode={self.mode!r}" + (
            f", value={self.value}" if self.mode == "constant" else ""
        )


def _dim_names(rank: int) -> tuple[str, ...]:
    """Names of the per-sample dimensions: C then the spatial axes."""
    return ("C", *_axes(rank - 1)) if rank >= 2 else ("dim 1",)


def _pad_pairs(p: dict, rank: int) -> list[tuple[int, int, int]]:
    """(per-sample dim, before, after) for each padded dimension, last dimension first."""
    pad = list(p["pad"])
    if len(pad) % 2:
        raise ParamError(
            f"pad needs pairs of values (before, after), got {len(pad)} values",
            fix="give an even number of values, last dimension first",
        )
    n = len(pad) // 2
    if n > rank:
        raise ParamError(
            f"pad has {n} pairs but the input has only {rank} dimensions besides the batch",
            fix=f"give at most {2 * rank} values",
        )
    return [(rank - 1 - k, pad[2 * k], pad[2 * k + 1]) for k in range(n)]


def _pad_shape(p: dict, ins: list) -> Shape:
    x = _any_tensor("pad")(p, ins)
    pairs = _pad_pairs(p, len(x))
    mode = p.get("mode", "constant")
    if mode != "constant":
        full = len(x) + 1
        n = len(pairs)
        if n not in (1, 2, 3) or full not in (n + 1, n + 2):
            raise ShapeError(
                f"{mode} padding of {n} dimension(s) needs a {n + 1}-D or {n + 2}-D tensor "
                f"(batch included)",
                expected=f"{n}-D or {n + 1}-D per sample",
                actual=shape_str(x),
                fix="use constant padding, or pad only the trailing spatial dimensions",
            )
    out = list(x)
    names = _dim_names(len(x))
    for d, lo, hi in pairs:
        if mode != "constant" and (lo < 0 or hi < 0):
            raise ParamError(f"{mode} padding cannot be negative", fix="use constant padding")
        if mode == "reflect" and max(lo, hi) >= x[d]:
            raise ShapeError(
                f"reflect padding of {max(lo, hi)} needs more than {max(lo, hi)} values along "
                f"{names[d]}",
                actual=x[d],
                expected=f"at least {max(lo, hi) + 1}",
                fix=f"pad by at most {x[d] - 1}, or use replicate padding",
            )
        if mode == "circular" and max(lo, hi) > x[d]:
            raise ShapeError(
                f"circular padding of {max(lo, hi)} wraps more than the {x[d]} values along "
                f"{names[d]}",
                fix=f"pad by at most {x[d]}",
            )
        out[d] = x[d] + lo + hi
        if out[d] < 1:
            raise ShapeError(
                f"negative padding removes all of {names[d]}",
                actual=shape_str(x),
                fix=f"crop by less than {x[d]} in total",
            )
    return tuple(out)


def _pad_rf(p: dict, rfs: list, ins: list, out: Any):
    rf = rfs[0] if rfs else None
    if rf is None or not rf.is_local or rf.dims is None:
        return rf, [], []
    pairs = {d: (lo, hi) for d, lo, hi in _pad_pairs(p, len(ins[0]))}
    pad = list(rf.padding)
    lines = []
    names = _axes(len(rf.dims))
    for a, d in enumerate(rf.dims):
        lo = pairs.get(d, (0, 0))[0]
        if lo:
            new = _num(rf.padding[a] + lo * rf.jump[a])
            lines.append(
                f"{names[a]}: padding = {_n(rf.padding[a])} + {lo}*{_n(rf.jump[a])} = {_n(new)}; "
                f"size = {_n(rf.size[a])} and jump = {_n(rf.jump[a])} unchanged"
            )
            pad[a] = new
    return replace(rf, padding=tuple(pad)), _dedupe(lines), []


def _pad_formulas(p: dict, ins: list, out: Any, c: Counts) -> dict[str, list[str]]:
    x = ins[0]
    names = _dim_names(len(x))
    lines = [
        f"{names[d]}_out = {x[d]} + {lo} + {hi} = {out[d]}"
        for d, lo, hi in sorted(_pad_pairs(p, len(x)))
        if lo or hi
    ] or [f"output = input = {shape_str(out)}"]
    mode = p.get("mode", "constant")
    fill = f"filled with {_n(p.get('value', 0.0))}" if mode == "constant" else f"{mode} padding"
    return {"output_shape": [*lines, f"{fill}; no parameters, no MACs"]}


def _pad_from(m: nn.Module) -> dict[str, Any]:
    if isinstance(m, Pad):
        return {"pad": list(m.pad), "mode": m.mode, "value": m.value}
    mode = "constant"
    for cls_name, name in (("Reflection", "reflect"), ("Replication", "replicate")):
        if type(m).__name__.startswith(cls_name):
            mode = name
    if "Circular" in type(m).__name__:
        mode = "circular"
    return {
        "pad": [int(v) for v in m.padding],
        "mode": mode,
        "value": float(getattr(m, "value", 0.0)),
    }


def _pad_module_types() -> tuple[type, ...]:
    names = [
        f"{kind}Pad{n}d"
        for kind in ("Constant", "Reflection", "Replication", "Circular")
        for n in (1, 2, 3)
    ]
    return (Pad, *(getattr(nn, n) for n in names if hasattr(nn, n)))


register(
    OpSpec(
        kind="pad",
        family="reshape",
        doc="pad any dimensions (channels too) with a constant, a reflection or a copy",
        params=(
            ParamSpec(
                "pad",
                "ints",
                [1, 1, 1, 1],
                "(before, after) pairs, last dimension first: left, right, top, bottom, "
                "front, back (for a (C, H, W) map, front/back add channels)",
            ),
            ParamSpec("mode", "choice", "constant", "what fills the border", choices=_PAD_MODES),
            ParamSpec("value", "float", 0.0, "fill value of constant padding"),
        ),
        arity=(1, 1),
        shape=_pad_shape,
        counts=lambda p, i, o: Counts(),
        rf=_pad_rf,
        build=lambda p: Pad(
            p.get("pad", [1, 1, 1, 1]), p.get("mode", "constant"), p.get("value", 0.0)
        ),
        formulas=_pad_formulas,
        modules=_pad_module_types(),
    )
)


# ------------------------------------------------------------------------------ slicing
def _slice_text(s: slice) -> str:
    start = "" if s.start is None else str(s.start)
    stop = "" if s.stop is None else str(s.stop)
    step = "" if s.step in (None, 1) else f":{s.step}"
    return f"{start}:{stop}{step}"


def _parse_index(text: str) -> tuple[Any, ...]:
    """``":, :, ::2, ::2"`` -> slices (and at most one ``...``); never evaluates the text."""
    items: list[Any] = []
    for raw in text.split(","):
        item = raw.strip()
        if item == "...":
            items.append(Ellipsis)
            continue
        parts = item.split(":")
        if len(parts) not in (2, 3):
            raise ParamError(
                f"index item {item!r} is not a slice",
                fix="write start:stop:step per dimension, e.g. ':, :, ::2, ::2'",
            )
        vals: list[int | None] = []
        for part in parts:
            part = part.strip()
            try:
                vals.append(None if part == "" else int(part))
            except ValueError:
                raise ParamError(
                    f"{part!r} in index item {item!r} is not an integer",
                    fix="slice bounds and steps are whole numbers",
                ) from None
        step = vals[2] if len(vals) == 3 else None
        if step is not None and step < 1:
            raise ParamError(f"slice step {step} is not positive", fix="use a step of 1 or more")
        items.append(slice(vals[0], vals[1], step))
    if items.count(Ellipsis) > 1:
        raise ParamError("an index can have only one '...'")
    return tuple(items)


def _full_index(p: dict, rank: int) -> tuple[slice, ...]:
    """One slice per dimension of the batched tensor (``rank`` per-sample dimensions)."""
    items = _parse_index(p["index"])
    full = rank + 1
    explicit = [i for i in items if i is not Ellipsis]
    if len(explicit) > full:
        raise ShapeError(
            f"the index {p['index']!r} has {len(explicit)} entries for a {full}-D tensor",
            actual=f"{len(explicit)} entries",
            expected=f"at most {full}",
        )
    out: list[slice] = []
    for i in items:
        if i is Ellipsis:
            out += [slice(None)] * (full - len(explicit))
        else:
            out.append(i)
    out += [slice(None)] * (full - len(out))
    b = out[0]
    if b.start not in (None, 0) or b.stop is not None or b.step not in (None, 1):
        raise ParamError(
            f"the index {p['index']!r} slices the batch dimension",
            fix="begin the index with ':' (the batch), e.g. ':, :, ::2, ::2'",
        )
    return tuple(out)


def _slice_shape(p: dict, ins: list) -> Shape:
    x = _any_tensor("slice")(p, ins)
    idx = _full_index(p, len(x))
    names = _dim_names(len(x))
    out = []
    for d, size in enumerate(x):
        n = len(range(*idx[d + 1].indices(size)))
        if n == 0:
            raise ShapeError(
                f"the slice {_slice_text(idx[d + 1])} selects nothing from {names[d]} of size "
                f"{size}",
                actual=size,
                fix=f"keep the bounds within 0..{size}",
            )
        out.append(n)
    return tuple(out)


def _slice_rf(p: dict, rfs: list, ins: list, out: Any):
    """Taking every step-th value from ``start`` is a 1x1 window with stride ``step`` and
    padding ``-start``: jump *= step, padding -= start*jump, size unchanged."""
    rf = rfs[0] if rfs else None
    if rf is None or not rf.is_local or rf.dims is None:
        return rf, [], []
    x = ins[0]
    idx = _full_index(p, len(x))
    jump, pad, lines = list(rf.jump), list(rf.padding), []
    names = _axes(len(rf.dims))
    for a, d in enumerate(rf.dims):
        start, _, step = idx[d + 1].indices(x[d])
        if start == 0 and step == 1:
            continue
        jump[a] = _num(rf.jump[a] * step)
        pad[a] = _num(rf.padding[a] - start * rf.jump[a])
        lines.append(
            f"{names[a]}: jump = {_n(rf.jump[a])}*{step} = {_n(jump[a])}; "
            f"padding = {_n(rf.padding[a])} - {start}*{_n(rf.jump[a])} = {_n(pad[a])}; "
            f"size = {_n(rf.size[a])} unchanged"
        )
    return replace(rf, jump=tuple(jump), padding=tuple(pad)), _dedupe(lines), []


def _slice_formulas(p: dict, ins: list, out: Any, c: Counts) -> dict[str, list[str]]:
    x = ins[0]
    idx = _full_index(p, len(x))
    names = _dim_names(len(x))
    lines = [f"output = x[{p['index']}] = {shape_str(out)}"]
    for d, size in enumerate(x):
        start, stop, step = idx[d + 1].indices(size)
        if (start, stop, step) != (0, size, 1):
            lines.append(
                f"{names[d]}_out = ceil(({stop} - {start})/{step}) = {out[d]}"
                if stop > start
                else f"{names[d]}_out = 0"
            )
    return {"output_shape": lines}


class Slice(nn.Module):
    """``x[index]`` for a basic slicing index given as text, e.g. ``":, :, ::2, ::2"``."""

    def __init__(self, index: str) -> None:
        super().__init__()
        self.index = index
        self._key = _parse_index(index)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[self._key]

    def extra_repr(self) -> str:
        return f"x[{self.index}]"


def slice_index(index: Any, rank: int) -> str | None:
    """The ``slice`` kind's index text for a Python index of a tensor with ``rank`` per-sample
    dimensions, or None when it is more than basic slicing that keeps the batch whole.

    >>> slice_index((slice(None), slice(None), slice(None, None, 2)), 3)
    ':, :, ::2'
    """
    items = index if isinstance(index, tuple) else (index,)
    for i in items:
        if i is Ellipsis:
            continue
        if not isinstance(i, slice):
            return None
        if not all(
            v is None or (isinstance(v, int) and not isinstance(v, bool))
            for v in (i.start, i.stop, i.step)
        ):
            return None
    text = ", ".join("..." if i is Ellipsis else _slice_text(i) for i in items)
    try:
        _full_index({"index": text}, rank)
    except CnnvizError:
        return None
    return text


register(
    OpSpec(
        kind="slice",
        family="reshape",
        doc="keep a range of each dimension, with a step (x[:, :, ::2, ::2] subsamples)",
        params=(
            ParamSpec(
                "index",
                "str",
                ":, :, ::2, ::2",
                "start:stop:step per dimension as in Python, batch first (':'); '...' fills",
            ),
        ),
        arity=(1, 1),
        shape=_slice_shape,
        counts=lambda p, i, o: Counts(),
        rf=_slice_rf,
        build=lambda p: Slice(p["index"]),
        formulas=_slice_formulas,
        modules=(Slice,),
    )
)


# ----------------------------------------------------------------------- normalisation
def _channels_check(p: dict, x: Shape, key: str, what: str) -> None:
    if x[0] != p[key]:
        raise ShapeError(
            f"{what} is set for {p[key]} channels but the input has {x[0]}",
            expected=p[key],
            actual=x[0],
            fix=f"{key} should be {x[0]}",
        )


def _bn_shape(ranks: tuple[int, ...], name: str) -> Callable[[dict, list], Shape]:
    def rule(p: dict, ins: list) -> Shape:
        x = _need_rank(ins[0], ranks, name)
        _channels_check(p, x, "num_features", name)
        return x

    return rule


def _bn_counts(p: dict, ins: list, out: Shape) -> Counts:
    c = p["num_features"]
    return Counts(
        params=2 * c if p.get("affine", True) else 0,
        buffers=2 * c + 1 if p.get("track_running_stats", True) else 0,
        ops=2 * prod(out),
    )


def _norm_formulas(key: str, per: str, k: int = 2) -> Callable[..., dict[str, list[str]]]:
    def f(p: dict, ins: list, out: Shape, c: Counts) -> dict[str, list[str]]:
        n = p[key] if isinstance(p[key], int) else prod(p[key])
        res = {
            "output_shape": [f"output = input = {shape_str(out)}"],
            "params": [
                f"params = 2*{_n(n)} = {_n(c.params)} (scale γ and shift β {per})"
                if c.params
                else "params = 0 (no affine scale or shift)"
            ],
            "ops": [f"ops = {k}*{_n(prod(out))} = {_n(c.ops)}"],
        }
        if c.buffers:
            res["params"].append(
                f"buffers = 2*{_n(n)} + 1 = {_n(c.buffers)} (running mean, variance, count)"
            )
        return res

    return f


_bn_params = (
    ParamSpec("num_features", "int", REQUIRED, "channels C", minimum=1),
    ParamSpec("eps", "float", 1e-5, "added to the variance", minimum=0),
    ParamSpec(
        "momentum", "float", 0.1, "running-average momentum", minimum=0, maximum=1, optional=True
    ),
    ParamSpec("affine", "bool", True, "learn a scale and shift per channel"),
    ParamSpec("track_running_stats", "bool", True, "keep running statistics for inference"),
)


def _bn_from(m: nn.Module) -> dict[str, Any]:
    return {
        "num_features": m.num_features,
        "eps": m.eps,
        "momentum": m.momentum,
        "affine": m.affine,
        "track_running_stats": m.track_running_stats,
    }


for _name, _cls, _ranks in (
    ("batch_norm1d", nn.BatchNorm1d, (1, 2)),
    ("batch_norm2d", nn.BatchNorm2d, (3,)),
):
    register(
        OpSpec(
            kind=_name,
            family="normalisation",
            doc="normalise each channel with batch statistics, then scale and shift",
            params=_bn_params,
            arity=(1, 1),
            shape=_bn_shape(_ranks, _name),
            counts=_bn_counts,
            rf=_rf_pointwise,
            build=(
                lambda cls: (
                    lambda p: cls(
                        p["num_features"],
                        eps=p.get("eps", 1e-5),
                        momentum=p.get("momentum", 0.1),
                        affine=p.get("affine", True),
                        track_running_stats=p.get("track_running_stats", True),
                    )
                )
            )(_cls),
            formulas=_norm_formulas("num_features", "per channel"),
            modules=(_cls,),
        )
    )


def _in_counts(p: dict, ins: list, out: Shape) -> Counts:
    c = p["num_features"]
    return Counts(
        params=2 * c if p.get("affine", False) else 0,
        buffers=2 * c + 1 if p.get("track_running_stats", False) else 0,
        ops=5 * prod(out),
    )


register(
    OpSpec(
        kind="instance_norm2d",
        family="normalisation",
        doc="normalise each channel of each sample over its own positions",
        params=(
            _bn_params[0],
            _bn_params[1],
            _bn_params[2],
            ParamSpec("affine", "bool", False, "learn a scale and shift per channel"),
            ParamSpec("track_running_stats", "bool", False, "keep running statistics"),
        ),
        arity=(1, 1),
        shape=_bn_shape((3,), "instance_norm2d"),
        counts=_in_counts,
        rf=_rf_spatial_stats,
        build=lambda p: nn.InstanceNorm2d(
            p["num_features"],
            eps=p.get("eps", 1e-5),
            momentum=p.get("momentum", 0.1),
            affine=p.get("affine", False),
            track_running_stats=p.get("track_running_stats", False),
        ),
        formulas=_norm_formulas("num_features", "per channel", 5),
        modules=(nn.InstanceNorm2d,),
    )
)


def _gn_shape(p: dict, ins: list) -> Shape:
    x = _need_rank(ins[0], (1, 2, 3, 4), "group_norm")
    _channels_check(p, x, "num_channels", "group_norm")
    if p["num_channels"] % p["num_groups"]:
        raise ParamError(
            f"num_channels={p['num_channels']} is not divisible by num_groups={p['num_groups']}",
            fix="choose a divisor",
        )
    return x


register(
    OpSpec(
        kind="group_norm",
        family="normalisation",
        doc="normalise groups of channels of each sample",
        params=(
            ParamSpec("num_groups", "int", REQUIRED, "number of channel groups", minimum=1),
            ParamSpec("num_channels", "int", REQUIRED, "channels C", minimum=1),
            ParamSpec("eps", "float", 1e-5, "added to the variance", minimum=0),
            ParamSpec("affine", "bool", True, "learn a scale and shift per channel"),
        ),
        arity=(1, 1),
        shape=_gn_shape,
        counts=lambda p, i, o: Counts(
            params=2 * p["num_channels"] if p.get("affine", True) else 0, ops=5 * prod(o)
        ),
        rf=_rf_spatial_stats,
        build=lambda p: nn.GroupNorm(
            p["num_groups"], p["num_channels"], eps=p.get("eps", 1e-5), affine=p.get("affine", True)
        ),
        formulas=_norm_formulas("num_channels", "per channel", 5),
        modules=(nn.GroupNorm,),
    )
)


def _ln_shape(p: dict, ins: list) -> Shape:
    x = ins[0]
    ns = tuple(p["normalized_shape"])
    if isinstance(x, MultiShape) or tuple(x[len(x) - len(ns) :]) != ns or len(ns) > len(x):
        raise ShapeError(
            "layer_norm's normalized_shape must equal the last dimensions of the input",
            expected=shape_str(ns),
            actual=shape_str(x),
            fix=f"normalized_shape should be {list(x[-len(ns) :]) if ns else [x[-1]]}",
        )
    return x


def _ln_counts(p: dict, ins: list, out: Shape) -> Counts:
    n = prod(p["normalized_shape"])
    k = (1 + (1 if p.get("bias", True) else 0)) if p.get("elementwise_affine", True) else 0
    return Counts(params=k * n, ops=5 * prod(out))


def _ln_from(m: nn.Module) -> dict[str, Any]:
    return {
        "normalized_shape": list(m.normalized_shape),
        "eps": m.eps,
        "elementwise_affine": m.elementwise_affine,
        "bias": getattr(m, "bias", None) is not None,
    }


register(
    OpSpec(
        kind="layer_norm",
        family="normalisation",
        doc="normalise over the last dimensions of each sample",
        params=(
            ParamSpec("normalized_shape", "ints", REQUIRED, "trailing dimensions normalised"),
            ParamSpec("eps", "float", 1e-5, "added to the variance", minimum=0),
            ParamSpec("elementwise_affine", "bool", True, "learn a scale and shift"),
            ParamSpec("bias", "bool", True, "learn the shift"),
        ),
        arity=(1, 1),
        shape=_ln_shape,
        counts=_ln_counts,
        rf=_rf_along(lambda p, s: set(range(len(s) - len(p["normalized_shape"]), len(s)))),
        build=lambda p: nn.LayerNorm(
            p["normalized_shape"],
            eps=p.get("eps", 1e-5),
            elementwise_affine=p.get("elementwise_affine", True),
            bias=p.get("bias", True),
        ),
        formulas=_norm_formulas("normalized_shape", "per normalised element", 5),
        modules=(nn.LayerNorm,),
    )
)


class LayerNorm2d(nn.LayerNorm):
    """Layer norm over the channels of each position of a (N, C, H, W) tensor (ConvNeXt)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 2, 3, 1)
        x = nn.functional.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


def _ln2d_shape(p: dict, ins: list) -> Shape:
    x = _need_rank(ins[0], 3, "layer_norm2d")
    _channels_check(p, x, "num_channels", "layer_norm2d")
    return x


register(
    OpSpec(
        kind="layer_norm2d",
        family="normalisation",
        doc="normalise the channels at each position (ConvNeXt's LayerNorm2d)",
        params=(
            ParamSpec("num_channels", "int", REQUIRED, "channels C", minimum=1),
            ParamSpec("eps", "float", 1e-6, "added to the variance", minimum=0),
            ParamSpec("elementwise_affine", "bool", True, "learn a scale and shift"),
        ),
        arity=(1, 1),
        shape=_ln2d_shape,
        counts=lambda p, i, o: Counts(
            params=2 * p["num_channels"] if p.get("elementwise_affine", True) else 0,
            ops=5 * prod(o),
        ),
        rf=_rf_pointwise,
        build=lambda p: LayerNorm2d(
            p["num_channels"],
            eps=p.get("eps", 1e-6),
            elementwise_affine=p.get("elementwise_affine", True),
        ),
        formulas=_norm_formulas("num_channels", "per channel", 5),
        modules=(LayerNorm2d,),
    )
)

register(
    OpSpec(
        kind="local_response_norm",
        family="normalisation",
        doc="AlexNet's normalisation across neighbouring channels",
        params=(
            ParamSpec("size", "int", 5, "number of neighbouring channels", minimum=1),
            ParamSpec("alpha", "float", 1e-4, "scale", minimum=0),
            ParamSpec("beta", "float", 0.75, "exponent", minimum=0),
            ParamSpec("k", "float", 1.0, "additive constant"),
        ),
        arity=(1, 1),
        shape=lambda p, i: _need_rank(i[0], (2, 3, 4), "local_response_norm"),
        counts=lambda p, i, o: Counts(ops=(p.get("size", 5) + 3) * prod(o)),
        rf=_rf_pointwise,
        build=lambda p: nn.LocalResponseNorm(
            p.get("size", 5),
            alpha=p.get("alpha", 1e-4),
            beta=p.get("beta", 0.75),
            k=p.get("k", 1.0),
        ),
        formulas=_f_pointwise,
        modules=(nn.LocalResponseNorm,),
    )
)


# -------------------------------------------------------------------------- activations
def _any_tensor(name: str) -> Callable[[dict, list], Shape]:
    def rule(p: dict, ins: list) -> Shape:
        x = ins[0]
        if isinstance(x, MultiShape):
            raise ShapeError(
                f"{name} needs one tensor, got several",
                actual=shape_str(x),
                fix="pick one output with getitem",
            )
        return x

    return rule


def _pointwise(
    kind: str,
    doc: str,
    cls: type | None,
    params: tuple[ParamSpec, ...] = (),
    family: str = "activation",
    ops_per: int = 1,
    rf: RFRule = _rf_pointwise,
    build: Callable[[dict], nn.Module] | None = None,
) -> OpSpec:
    def default_build(p: dict) -> nn.Module:
        return cls(**p)

    return register(
        OpSpec(
            kind=kind,
            family=family,
            doc=doc,
            params=params,
            arity=(1, 1),
            shape=_any_tensor(kind),
            counts=lambda p, i, o: Counts(ops=ops_per * _numel(o)),
            rf=rf,
            build=build or default_build,
            formulas=_f_pointwise,
            modules=(cls,) if cls else (),
        )
    )


_inplace = ParamSpec("inplace", "bool", False, "overwrite the input (saves memory)")
_pointwise("relu", "max(0, x)", nn.ReLU, (_inplace,))
_pointwise("relu6", "min(max(0, x), 6)", nn.ReLU6, (_inplace,))
_pointwise(
    "leaky_relu",
    "x, or slope*x below 0",
    nn.LeakyReLU,
    (ParamSpec("negative_slope", "float", 0.01, "slope below 0"), _inplace),
)
_pointwise(
    "elu",
    "x, or alpha*(exp(x)-1) below 0",
    nn.ELU,
    (ParamSpec("alpha", "float", 1.0, "saturation value"), _inplace),
)
_pointwise(
    "gelu",
    "x * Phi(x)",
    nn.GELU,
    (ParamSpec("approximate", "choice", "none", "tanh approximation", choices=("none", "tanh")),),
)
_pointwise("silu", "x * sigmoid(x) (swish)", nn.SiLU, (_inplace,))
_pointwise("sigmoid", "1/(1+exp(-x))", nn.Sigmoid)
_pointwise("tanh", "hyperbolic tangent", nn.Tanh)
_pointwise("hardswish", "x * relu6(x+3)/6", nn.Hardswish, (_inplace,))
_pointwise("hardsigmoid", "relu6(x+3)/6", nn.Hardsigmoid, (_inplace,))
_pointwise("mish", "x * tanh(softplus(x))", nn.Mish, (_inplace,))
_pointwise(
    "softplus",
    "log(1+exp(x))",
    nn.Softplus,
    (
        ParamSpec("beta", "float", 1.0, "sharpness"),
        ParamSpec("threshold", "float", 20.0, "linear above this"),
    ),
)
_pointwise(
    "identity",
    "passes the input through",
    nn.Identity,
    family="reshape",
    ops_per=0,
    build=lambda p: nn.Identity(),
)
_pointwise(
    "dropout",
    "zero random elements while training",
    nn.Dropout,
    (ParamSpec("p", "float", 0.5, "probability of zeroing", minimum=0, maximum=1), _inplace),
    family="regularisation",
    ops_per=0,
)
_pointwise(
    "dropout2d",
    "zero random whole channels while training",
    nn.Dropout2d,
    (ParamSpec("p", "float", 0.5, "probability of zeroing", minimum=0, maximum=1), _inplace),
    family="regularisation",
    ops_per=0,
)


def _build_stochastic_depth(p: dict) -> nn.Module:
    from torchvision.ops import StochasticDepth

    return StochasticDepth(p.get("p", 0.0), p.get("mode", "row"))


def _stochastic_depth_types() -> tuple[type, ...]:
    try:
        from torchvision.ops import StochasticDepth
    except ImportError:  # pragma: no cover - torchvision is a dependency
        return ()
    return (StochasticDepth,)


register(
    replace(
        _pointwise(
            "stochastic_depth",
            "drop the whole residual branch at random while training",
            None,
            (
                ParamSpec("p", "float", 0.0, "probability of dropping", minimum=0, maximum=1),
                ParamSpec(
                    "mode", "choice", "row", "per sample or per batch", choices=("row", "batch")
                ),
            ),
            family="regularisation",
            ops_per=0,
            build=_build_stochastic_depth,
        ),
        modules=_stochastic_depth_types(),
    )
)


_softmax_dim = ParamSpec("dim", "int", 1, "dimension normalised (batch is 0)")
register(
    replace(
        _pointwise(
            "softmax",
            "exp(x)/sum(exp(x)) along dim",
            nn.Softmax,
            (_softmax_dim,),
            ops_per=3,
            rf=_rf_along(lambda p, s: {_sample_dim(p.get("dim", 1), len(s))}),
        ),
        modules=(nn.Softmax,),
    )
)
_pointwise(
    "log_softmax",
    "log of softmax along dim",
    nn.LogSoftmax,
    (_softmax_dim,),
    ops_per=4,
    rf=_rf_along(lambda p, s: {_sample_dim(p.get("dim", 1), len(s))}),
)


# -------------------------------------------------------------------------------- merge
def _broadcast(shapes: list[Shape], what: str) -> Shape:
    if any(isinstance(s, MultiShape) for s in shapes):
        raise ShapeError(f"{what} needs tensors, got a tuple of them", fix="insert a getitem")
    rank = max(len(s) for s in shapes)
    padded = [(1,) * (rank - len(s)) + tuple(s) for s in shapes]
    out = []
    for a in range(rank):
        sizes = {s[a] for s in padded}
        big = sizes - {1}
        if len(big) > 1:
            a_txt, b_txt = sorted(big)[:2]
            if a == 0 and rank >= 2:
                problem = f"channels differ: {a_txt} vs {b_txt}"
                fix = (
                    "a 1x1 convolution on the shortcut (a projection) would match them"
                    if what == "add"
                    else "make the channel counts equal"
                )
            else:
                problem = (
                    f"sizes differ on dimension {a + 1}: {a_txt} vs {b_txt}"
                    if rank < 3 or a < rank - 2
                    else "spatial sizes differ: "
                    + " vs ".join("x".join(str(v) for v in s[-2:]) for s in padded)
                )
                fix = "make both branches keep the same spatial size (padding or stride)"
            raise ShapeError(
                f"{what} of {' and '.join(shape_str(s) for s in shapes)}: {problem}", fix=fix
            )
        out.append(max(sizes))
    return tuple(out)


def _merge_shape(what: str) -> Callable[[dict, list], Shape]:
    def rule(p: dict, ins: list) -> Shape:
        if len(ins) == 1 and p.get("scalar") is None:
            raise ParamError(f"{what} of one input needs a scalar", fix="connect a second input")
        return _broadcast(list(ins), what)

    return rule


def _rf_merge_rule(p: dict, rfs: list, ins: list, out: Any):
    return rf_merge(rfs)


class Add(nn.Module):
    """Sum of all inputs (plus an optional constant)."""

    def __init__(self, scalar: float | None = None) -> None:
        super().__init__()
        self.scalar = scalar

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        out = xs[0]
        for x in xs[1:]:
            out = out + x
        return out + self.scalar if self.scalar is not None else out


class Mul(nn.Module):
    """Element-wise product of all inputs, broadcasting (squeeze-and-excitation scales)."""

    def __init__(self, scalar: float | None = None) -> None:
        super().__init__()
        self.scalar = scalar

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        out = xs[0]
        for x in xs[1:]:
            out = out * x
        return out * self.scalar if self.scalar is not None else out


def _merge_formulas(symbol: str) -> Callable[[dict, list, Any, Counts], dict[str, list[str]]]:
    def f(p: dict, ins: list, out: Any, c: Counts) -> dict[str, list[str]]:
        terms = [shape_str(s) for s in ins]
        if p.get("scalar") is not None:
            terms.append(_n(p["scalar"]))
        return {
            "output_shape": [f"{symbol.join(terms)} -> {shape_str(out)} (broadcast)"],
            "ops": [f"ops = {len(terms) - 1}*{_n(prod(out))} = {_n(c.ops)}"],
        }

    return f


_scalar = ParamSpec("scalar", "float", None, "constant added / multiplied as well", optional=True)
for _name, _cls, _doc in (
    ("add", Add, "element-wise sum (residual connections)"),
    ("mul", Mul, "element-wise product, broadcasting (gates, SE)"),
):
    register(
        OpSpec(
            kind=_name,
            family="merge",
            doc=_doc,
            params=(_scalar,),
            arity=(1, None),
            shape=_merge_shape(_name),
            counts=lambda p, i, o: Counts(
                ops=prod(o) * (len(i) - 1 + (0 if p.get("scalar") is None else 1))
            ),
            rf=_rf_merge_rule,
            build=(lambda cls: lambda p: cls(p.get("scalar")))(_cls),
            formulas=_merge_formulas(" + " if _name == "add" else " * "),
            modules=(_cls,),
        )
    )


class Cat(nn.Module):
    """Concatenation along ``dim`` (channels by default)."""

    def __init__(self, dim: int = 1) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        return torch.cat(xs, dim=self.dim)


def _cat_shape(p: dict, ins: list) -> Shape:
    first = ins[0]
    if any(isinstance(s, MultiShape) for s in ins):
        raise ShapeError("cat needs tensors, got a tuple of them", fix="insert a getitem")
    d = _sample_dim(p.get("dim", 1), len(first))
    before, after = tuple(first[:d]), tuple(first[d + 1 :])
    for s in ins[1:]:
        if len(s) != len(first) or tuple(s[:d]) != before or tuple(s[d + 1 :]) != after:
            if len(s) == len(first) and len(s) >= 3 and d == 0:
                hw = [tuple(x[1:]) for x in ins]
                problem = "spatial sizes differ: " + " vs ".join(
                    "x".join(str(v) for v in t) for t in dict.fromkeys(hw)
                )
            else:
                problem = "shapes differ outside the concatenated dimension"
            raise ShapeError(
                f"cat of {' and '.join(shape_str(x) for x in ins)}: {problem}",
                expected=shape_str(first),
                actual=shape_str(s),
                fix="make every branch keep the same spatial size (padding or stride)",
            )
    out = list(first)
    out[d] = sum(s[d] for s in ins)
    return tuple(out)


def _cat_rf(p: dict, rfs: list, ins: list, out: Any):
    d = _sample_dim(p.get("dim", 1), len(ins[0]))
    known = [r for r in rfs if r is not None]
    if known and known[0].dims and d in known[0].dims:
        return (
            RF(None, None, None, False, None),
            [],
            ["cat along a spatial axis: field not tracked"],
        )
    return rf_merge(rfs)


register(
    OpSpec(
        kind="cat",
        family="merge",
        doc="concatenate along a dimension (channels: Inception, DenseNet)",
        params=(ParamSpec("dim", "int", 1, "dimension joined (1 = channels; batch is 0)"),),
        arity=(1, None),
        shape=_cat_shape,
        counts=lambda p, i, o: Counts(),
        rf=_cat_rf,
        build=lambda p: Cat(p.get("dim", 1)),
        formulas=lambda p, i, o, c: {
            "output_shape": [
                "C_out = "
                + " + ".join(str(s[_sample_dim(p.get("dim", 1), len(s))]) for s in i)
                + f" = {o[_sample_dim(p.get('dim', 1), len(o))]}",
                f"output = {shape_str(o)}",
            ]
        },
        modules=(Cat,),
    )
)


# ------------------------------------------------------------------------------ reshape
def _flatten_shape(p: dict, ins: list) -> Shape:
    x = _any_tensor("flatten")(p, ins)
    full = len(x) + 1
    s = p.get("start_dim", 1)
    e = p.get("end_dim", -1)
    s = s + full if s < 0 else s
    e = e + full if e < 0 else e
    if not 0 <= s <= e < full:
        raise ParamError(
            f"flatten dims {p.get('start_dim', 1)}..{p.get('end_dim', -1)} do "
            f"not fit a {full}-D tensor"
        )
    if s == 0:
        raise ParamError(
            "flatten over the batch dimension is not supported here", fix="use start_dim=1"
        )
    xs = (0, *x)
    return tuple(xs[1:s]) + (prod(xs[s : e + 1]),) + tuple(xs[e + 1 :])


def _flatten_rf(p: dict, rfs: list, ins: list, out: Any):
    rf = rfs[0]
    if rf is None or rf.dims is None:
        return rf, [], []
    x = ins[0]
    full = len(x) + 1
    s = p.get("start_dim", 1)
    e = p.get("end_dim", -1)
    s = (s + full if s < 0 else s) - 1
    e = (e + full if e < 0 else e) - 1
    dims = tuple(d if d < s else s if d <= e else d - (e - s) for d in rf.dims)
    return replace(rf, dims=dims), [], []


register(
    OpSpec(
        kind="flatten",
        family="reshape",
        doc="merge dimensions into one (before a linear layer)",
        params=(
            ParamSpec("start_dim", "int", 1, "first dimension merged (batch is 0)"),
            ParamSpec("end_dim", "int", -1, "last dimension merged"),
        ),
        arity=(1, 1),
        shape=_flatten_shape,
        counts=lambda p, i, o: Counts(),
        rf=_flatten_rf,
        build=lambda p: nn.Flatten(p.get("start_dim", 1), p.get("end_dim", -1)),
        formulas=lambda p, i, o, c: {
            "output_shape": [
                f"features = {'*'.join(str(v) for v in i[0])} = {_n(prod(i[0]))}"
                if len(o) == 1
                else f"output = {shape_str(o)}"
            ]
        },
        modules=(nn.Flatten,),
    )
)


class Reshape(nn.Module):
    """``x.reshape(batch, *shape)``: the per-sample target shape (one entry may be -1)."""

    def __init__(self, shape: Sequence[int]) -> None:
        super().__init__()
        self.shape = tuple(shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], *self.shape)


def _reshape_shape(p: dict, ins: list) -> Shape:
    x = _any_tensor("reshape")(p, ins)
    target = list(p["shape"])
    total = prod(x)
    if target.count(-1) > 1:
        raise ParamError("reshape allows at most one -1")
    if -1 in target:
        known = prod([t for t in target if t != -1])
        if known == 0 or total % known:
            raise ShapeError(
                f"cannot reshape {shape_str(x)} ({total} values) to {target}",
                actual=total,
                expected=f"a multiple of {known}",
            )
        target[target.index(-1)] = total // known
    if prod(target) != total:
        raise ShapeError(
            f"cannot reshape {shape_str(x)} to {shape_str(tuple(target))}",
            expected=f"{_n(total)} values",
            actual=f"{_n(prod(target))} values",
            fix=f"the target must hold {_n(total)} values",
        )
    return tuple(target)


def _dim_groups(src: Shape, dst: Shape) -> dict[int, int] | None:
    """For a reshape, the destination dim holding each source dim (None when dims mix)."""
    mapping: dict[int, int] = {}
    i = j = 0
    while i < len(src) and j < len(dst):
        a_start, b_start = i, j
        pa, pb = src[i], dst[j]
        i += 1
        j += 1
        while pa != pb:
            if pa < pb:
                if i >= len(src):
                    return None
                pa *= src[i]
                i += 1
            else:
                if j >= len(dst):
                    return None
                pb *= dst[j]
                j += 1
        if j - b_start > 1 and i - a_start > 1:
            return None
        for k in range(a_start, i):
            mapping[k] = b_start if j - b_start == 1 else -1
    return mapping


def _reshape_rf(p: dict, rfs: list, ins: list, out: Any):
    rf = rfs[0]
    if rf is None or rf.dims is None:
        return rf, [], []
    m = _dim_groups(tuple(ins[0]), tuple(out))
    if m is None or any(m.get(d, -1) < 0 for d in rf.dims):
        return (
            RF(None, None, None, rf.global_, None),
            [],
            ["reshape splits a spatial axis: field not tracked"],
        )
    return replace(rf, dims=tuple(m[d] for d in rf.dims)), [], []


register(
    OpSpec(
        kind="reshape",
        family="reshape",
        doc="view the values with another shape",
        params=(ParamSpec("shape", "ints", REQUIRED, "per-sample target shape (-1: inferred)"),),
        arity=(1, 1),
        shape=_reshape_shape,
        counts=lambda p, i, o: Counts(),
        rf=_reshape_rf,
        build=lambda p: Reshape(p["shape"]),
        formulas=_f_common,
        modules=(Reshape,),
    )
)


class Permute(nn.Module):
    """``x.permute(*dims)`` (dims count the batch as 0)."""

    def __init__(self, dims: Sequence[int]) -> None:
        super().__init__()
        self.dims = list(dims)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.permute(x, self.dims)


def _permutation(p: dict, rank: int) -> list[int]:
    dims = [d + rank + 1 if d < 0 else d for d in p["dims"]]
    if sorted(dims) != list(range(rank + 1)):
        raise ParamError(
            f"dims {p['dims']} is not a permutation of 0..{rank}",
            fix=f"give each of 0..{rank} once",
        )
    if dims[0] != 0:
        raise ParamError("permute may not move the batch dimension", fix="keep dims[0] = 0")
    return [d - 1 for d in dims[1:]]


def _permute_rf(p: dict, rfs: list, ins: list, out: Any):
    rf = rfs[0]
    if rf is None or rf.dims is None:
        return rf, [], []
    perm = _permutation(p, len(ins[0]))
    return replace(rf, dims=tuple(perm.index(d) for d in rf.dims)), [], []


def _permute_types() -> tuple[type, ...]:
    types: list[type] = [Permute]
    try:
        from torchvision.ops.misc import Permute as TvPermute

        types.append(TvPermute)
    except ImportError:  # pragma: no cover
        pass
    return tuple(types)


register(
    OpSpec(
        kind="permute",
        family="reshape",
        doc="reorder dimensions (e.g. to channels-last)",
        params=(ParamSpec("dims", "ints", REQUIRED, "new order, batch is 0 (e.g. [0, 2, 3, 1])"),),
        arity=(1, 1),
        shape=lambda p, i: tuple(
            _any_tensor("permute")(p, i)[d] for d in _permutation(p, len(i[0]))
        ),
        counts=lambda p, i, o: Counts(),
        rf=_permute_rf,
        build=lambda p: Permute(p["dims"]),
        formulas=_f_common,
        modules=_permute_types(),
    )
)


class Transpose(nn.Module):
    """``x.transpose(dim0, dim1)``."""

    def __init__(self, dim0: int, dim1: int) -> None:
        super().__init__()
        self.dim0, self.dim1 = dim0, dim1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.transpose(self.dim0, self.dim1)


def _transpose_perm(p: dict, rank: int) -> list[int]:
    a, b = _sample_dim(p["dim0"], rank), _sample_dim(p["dim1"], rank)
    perm = list(range(rank))
    perm[a], perm[b] = perm[b], perm[a]
    return perm


register(
    OpSpec(
        kind="transpose",
        family="reshape",
        doc="swap two dimensions",
        params=(
            ParamSpec("dim0", "int", REQUIRED, "first dimension (batch is 0)"),
            ParamSpec("dim1", "int", REQUIRED, "second dimension"),
        ),
        arity=(1, 1),
        shape=lambda p, i: tuple(i[0][d] for d in _transpose_perm(p, len(i[0]))),
        counts=lambda p, i, o: Counts(),
        rf=lambda p, r, i, o: (
            (
                replace(r[0], dims=tuple(_transpose_perm(p, len(i[0])).index(d) for d in r[0].dims))
                if r[0] is not None and r[0].dims is not None
                else r[0]
            ),
            [],
            [],
        ),
        build=lambda p: Transpose(p["dim0"], p["dim1"]),
        formulas=_f_common,
        modules=(Transpose,),
    )
)


def _shuffle_shape(p: dict, ins: list) -> Shape:
    x = _any_tensor("channel_shuffle")(p, ins)
    if x[0] % p["groups"]:
        raise ShapeError(
            f"{x[0]} channels do not split into {p['groups']} groups",
            actual=x[0],
            expected=f"a multiple of {p['groups']}",
        )
    return x


register(
    OpSpec(
        kind="channel_shuffle",
        family="reshape",
        doc="interleave channel groups (ShuffleNet)",
        params=(ParamSpec("groups", "int", 2, "number of groups", minimum=1),),
        arity=(1, 1),
        shape=_shuffle_shape,
        counts=lambda p, i, o: Counts(),
        rf=_rf_pointwise,
        build=lambda p: nn.ChannelShuffle(p.get("groups", 2)),
        formulas=_f_pointwise,
        modules=(nn.ChannelShuffle,),
    )
)


class Mean(nn.Module):
    """``x.mean(dim, keepdim)``: e.g. global average pooling as ``mean([2, 3])``."""

    def __init__(self, dim: Sequence[int] | int, keepdim: bool = False) -> None:
        super().__init__()
        self.dim = list(dim) if isinstance(dim, (list, tuple)) else dim
        self.keepdim = keepdim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(self.dim, keepdim=self.keepdim)


def _reduce_dims(p: dict, rank: int) -> list[int]:
    d = p["dim"]
    dims = d if isinstance(d, (list, tuple)) else [d]
    return sorted({_sample_dim(x, rank) for x in dims})


def _mean_shape(p: dict, ins: list) -> Shape:
    x = _any_tensor("mean")(p, ins)
    dims = _reduce_dims(p, len(x))
    if p.get("keepdim", False):
        return tuple(1 if a in dims else v for a, v in enumerate(x))
    return tuple(v for a, v in enumerate(x) if a not in dims)


def _mean_rf(p: dict, rfs: list, ins: list, out: Any):
    rf = rfs[0]
    if rf is None:
        return None, [], []
    dims = set(_reduce_dims(p, len(ins[0])))
    if _mixes(rf, dims):
        return RF.everywhere(), ["rf: global (averages over a spatial axis)"], []
    if rf.dims is None or p.get("keepdim", False):
        return rf, [], []
    return replace(rf, dims=tuple(d - sum(1 for r in dims if r < d) for d in rf.dims)), [], []


register(
    OpSpec(
        kind="mean",
        family="pooling",
        doc="average over dimensions ([2, 3]: global average pool)",
        params=(
            ParamSpec("dim", "dims", [2, 3], "dimensions averaged (batch is 0)"),
            ParamSpec("keepdim", "bool", False, "keep them with size 1"),
        ),
        arity=(1, 1),
        shape=_mean_shape,
        counts=lambda p, i, o: Counts(ops=prod(i[0])),
        rf=_mean_rf,
        build=lambda p: Mean(p["dim"], p.get("keepdim", False)),
        formulas=lambda p, i, o, c: {
            "output_shape": [f"output = {shape_str(o)}"],
            "ops": [f"ops = one per input element = {_n(c.ops)}"],
        },
        modules=(Mean,),
    )
)


class Chunk(nn.Module):
    """``x.chunk(chunks, dim)``: a tuple of tensors."""

    def __init__(self, chunks: int, dim: int = 1) -> None:
        super().__init__()
        self.chunks, self.dim = chunks, dim

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return x.chunk(self.chunks, self.dim)


def _chunk_shape(p: dict, ins: list) -> MultiShape:
    x = _any_tensor("chunk")(p, ins)
    d = _sample_dim(p.get("dim", 1), len(x))
    n = p["chunks"]
    size = -(-x[d] // n)
    parts = []
    left = x[d]
    while left > 0:
        parts.append(min(size, left))
        left -= size
    return MultiShape(tuple(x[:d] + (s,) + x[d + 1 :] for s in parts))


register(
    OpSpec(
        kind="chunk",
        family="reshape",
        doc="split into equal parts along a dimension",
        params=(
            ParamSpec("chunks", "int", 2, "number of parts", minimum=1),
            ParamSpec("dim", "int", 1, "dimension split (1 = channels)"),
        ),
        arity=(1, 1),
        shape=_chunk_shape,
        counts=lambda p, i, o: Counts(),
        rf=_rf_pointwise,
        build=lambda p: Chunk(p.get("chunks", 2), p.get("dim", 1)),
        formulas=_f_common,
        modules=(Chunk,),
    )
)


class GetItem(nn.Module):
    """Pick one tensor of a tuple output."""

    def __init__(self, index: int) -> None:
        super().__init__()
        self.index = index

    def forward(self, x: Sequence[torch.Tensor]) -> torch.Tensor:
        return x[self.index]


def _getitem_shape(p: dict, ins: list) -> Any:
    x = ins[0]
    if not isinstance(x, MultiShape):
        raise ShapeError(
            "getitem picks from a tuple output, but the input is one tensor",
            actual=shape_str(x),
            fix="connect the tensor directly",
        )
    i = p["index"]
    if not -len(x) <= i < len(x):
        raise ParamError(
            f"index {i} is out of range for {len(x)} outputs", fix=f"choose 0..{len(x) - 1}"
        )
    return x[i]


register(
    OpSpec(
        kind="getitem",
        family="reshape",
        doc="pick one output of a multi-output operation",
        params=(ParamSpec("index", "int", 0, "which output"),),
        arity=(1, 1),
        shape=_getitem_shape,
        counts=lambda p, i, o: Counts(),
        rf=_rf_pointwise,
        build=lambda p: GetItem(p.get("index", 0)),
        formulas=_f_common,
        modules=(GetItem,),
    )
)


# ------------------------------------------------------------------- inputs and parameters
class _Nothing(nn.Module):
    def forward(self, *xs: Any) -> Any:  # pragma: no cover - never called
        raise RuntimeError("input and parameter nodes are fed by the built model")


register(
    OpSpec(
        kind="input",
        family="input",
        doc="the network's input tensor",
        params=(ParamSpec("shape", "ints", [3, 32, 32], "per-sample shape, e.g. [3, 224, 224]"),),
        arity=(0, 0),
        shape=lambda p, i: tuple(p["shape"]),
        counts=lambda p, i, o: Counts(),
        rf=lambda p, r, i, o: (RF.identity(len(o) - 1, len(o)) if len(o) > 1 else None, [], []),
        build=lambda p: _Nothing(),
        formulas=lambda p, i, o, c: {"output_shape": [f"input = {shape_str(o)}"]},
    )
)

register(
    OpSpec(
        kind="parameter",
        family="input",
        doc="a learned tensor used directly in the computation (e.g. ConvNeXt's layer_scale)",
        params=(
            ParamSpec("shape", "ints", REQUIRED, "tensor shape"),
            ParamSpec("trainable", "bool", True, "learned (a parameter) or fixed (a buffer)"),
            ParamSpec("fill", "float", 0.0, "initial value of every element"),
        ),
        arity=(0, 0),
        shape=lambda p, i: tuple(p["shape"]),
        counts=lambda p, i, o: (
            Counts(params=prod(o)) if p.get("trainable", True) else Counts(buffers=prod(o))
        ),
        rf=lambda p, r, i, o: (None, [], []),
        build=lambda p: _Nothing(),
        formulas=lambda p, i, o, c: {
            "params": [f"params = {'*'.join(map(str, o))} = {_n(prod(o))}"]
        },
    )
)


# ------------------------------------------------------------------------ trace support
def kind_for_module(module: nn.Module) -> str | None:
    """The registry kind a module maps to, or None (it becomes opaque or is traced through).

    A subclass counts only when it keeps the base class's ``forward`` (so torchvision's
    ``LayerNorm2d``, which permutes inside, is not mistaken for ``nn.LayerNorm``).
    """
    cls = type(module)
    hit = _MODULE_KIND.get(cls)
    if hit is not None:
        return hit
    for base in cls.__mro__[1:]:
        kind = _MODULE_KIND.get(base)
        if kind is not None and getattr(cls, "forward", None) is getattr(base, "forward", None):
            return kind
    return None


def params_from_module(kind: str, module: nn.Module) -> dict[str, Any]:
    """Hyper-parameters of ``module`` read from its attributes, for the node of ``kind``."""
    reader = _MODULE_READERS.get(kind)
    if reader is None:
        return {}
    return reader(module)


def _simple(*names: str) -> Callable[[nn.Module], dict[str, Any]]:
    def read(m: nn.Module) -> dict[str, Any]:
        return {n: getattr(m, n) for n in names if hasattr(m, n)}

    return read


def _tv_layernorm2d() -> tuple[type, ...]:
    try:
        from torchvision.models.convnext import LayerNorm2d as TvLayerNorm2d
    except ImportError:  # pragma: no cover
        return ()
    return (TvLayerNorm2d,)


_MODULE_READERS: dict[str, Callable[[nn.Module], dict[str, Any]]] = {
    "conv1d": _conv_from,
    "conv2d": _conv_from,
    "conv3d": _conv_from,
    "conv_transpose1d": _convt_from,
    "conv_transpose2d": _convt_from,
    "linear": lambda m: {
        "in_features": m.in_features,
        "out_features": m.out_features,
        "bias": m.bias is not None,
    },
    "max_pool1d": _pool_from,
    "max_pool2d": _pool_from,
    "avg_pool1d": _pool_from,
    "avg_pool2d": _pool_from,
    "adaptive_avg_pool1d": lambda m: {"output_size": _list_or_int(m.output_size)},
    "adaptive_avg_pool2d": lambda m: {"output_size": _list_or_int(m.output_size)},
    "adaptive_max_pool1d": lambda m: {
        "output_size": _list_or_int(m.output_size),
        "return_indices": m.return_indices,
    },
    "adaptive_max_pool2d": lambda m: {
        "output_size": _list_or_int(m.output_size),
        "return_indices": m.return_indices,
    },
    "max_unpool2d": lambda m: {
        "kernel_size": _list_or_int(m.kernel_size),
        "stride": _list_or_int(m.stride),
        "padding": _list_or_int(m.padding),
    },
    "upsample": lambda m: {
        "size": _list_or_int(m.size) if m.size is not None else None,
        "scale_factor": (
            None
            if m.scale_factor is None
            else float(m.scale_factor)
            if not isinstance(m.scale_factor, tuple)
            else [float(v) for v in m.scale_factor]
        ),
        "mode": m.mode,
        "align_corners": m.align_corners,
    },
    "zero_pad2d": lambda m: {"padding": list(m.padding)},
    "pad": _pad_from,
    "slice": _simple("index"),
    "batch_norm1d": _bn_from,
    "batch_norm2d": _bn_from,
    "instance_norm2d": _bn_from,
    "group_norm": _simple("num_groups", "num_channels", "eps", "affine"),
    "layer_norm": _ln_from,
    "layer_norm2d": lambda m: {
        "num_channels": int(m.normalized_shape[0]),
        "eps": m.eps,
        "elementwise_affine": m.elementwise_affine,
    },
    "local_response_norm": _simple("size", "alpha", "beta", "k"),
    "relu": _simple("inplace"),
    "relu6": _simple("inplace"),
    "silu": _simple("inplace"),
    "leaky_relu": _simple("negative_slope", "inplace"),
    "elu": _simple("alpha", "inplace"),
    "gelu": _simple("approximate"),
    "hardswish": _simple("inplace"),
    "hardsigmoid": _simple("inplace"),
    "mish": _simple("inplace"),
    "softplus": _simple("beta", "threshold"),
    "dropout": _simple("p", "inplace"),
    "dropout2d": _simple("p", "inplace"),
    "stochastic_depth": _simple("p", "mode"),
    "softmax": lambda m: {"dim": m.dim if m.dim is not None else 1},
    "log_softmax": lambda m: {"dim": m.dim if m.dim is not None else 1},
    "flatten": _simple("start_dim", "end_dim"),
    "permute": lambda m: {"dims": list(m.dims)},
    "transpose": _simple("dim0", "dim1"),
    "channel_shuffle": _simple("groups"),
    "reshape": lambda m: {"shape": list(m.shape)},
    "mean": lambda m: {"dim": m.dim, "keepdim": m.keepdim},
    "chunk": _simple("chunks", "dim"),
    "getitem": _simple("index"),
    "cat": _simple("dim"),
    "add": _simple("scalar"),
    "mul": _simple("scalar"),
}

_MODULE_KIND: dict[type, str] = {}
for _spec in REGISTRY.values():
    for _t in _spec.modules:
        _MODULE_KIND.setdefault(_t, _spec.kind)
# torchvision's LayerNorm2d subclasses nn.LayerNorm but normalises channels per position.
for _t in _tv_layernorm2d():
    _MODULE_KIND[_t] = "layer_norm2d"
_MODULE_KIND[nn.Softmax2d] = "softmax"
_MODULE_READERS["softmax"] = lambda m: {
    "dim": -3 if isinstance(m, nn.Softmax2d) else (m.dim if m.dim is not None else 1)
}


def families() -> dict[str, list[str]]:
    """Kinds grouped by family, for the palette."""
    out: dict[str, list[str]] = {}
    for spec in REGISTRY.values():
        out.setdefault(spec.family, []).append(spec.kind)
    return out
