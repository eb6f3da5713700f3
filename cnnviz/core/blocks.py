"""Ready blocks: parameterised sub-graph templates that are inserted into a graph as one group.

A :class:`BlockSpec` has a name, a one-line description for the palette and its parameters with
defaults. :func:`instantiate` turns it into nodes for a given incoming shape, so that a block
adapts to the channels (and, for the classifier heads, the spatial size) where it is dropped:
a residual block after a 64-channel layer gets ``in_channels=64`` on its first convolution and
a projection shortcut when its own output has other channels or a stride.

Example:
    >>> from cnnviz.core import blocks
    >>> inst = blocks.instantiate("conv_bn_relu", (16, 32, 32), {"out_channels": 32}, "stem")
    >>> [n.name for n in inst.nodes]
    ['stem.conv', 'stem.bn', 'stem.relu']
    >>> inst.output
    'stem.relu'
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cnnviz.core.graph import Node
from cnnviz.errors import CnnvizError

__all__ = [
    "BLOCKS",
    "INPUT",
    "BlockError",
    "BlockInstance",
    "BlockParam",
    "BlockSpec",
    "check_block_params",
    "instantiate",
    "palette",
]

INPUT = "$input"
"""Placeholder in a template node's inputs for the tensor the block is inserted after."""


class BlockError(CnnvizError):
    """A block cannot be made: unknown name, a bad parameter, or an unsuitable incoming shape."""


@dataclass(frozen=True)
class BlockParam:
    """One parameter of a block.

    Attributes:
        name: Keyword.
        type: ``int``, ``float``, ``bool`` or ``choice``.
        default: Default value; None for "derived from the incoming shape" (``doc`` says how).
        doc: One line for the inspector.
        choices: Allowed values of a ``choice``.
        minimum: Smallest allowed number.
        maximum: Largest allowed number.
    """

    name: str
    type: str
    default: Any
    doc: str
    choices: tuple[Any, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None


@dataclass(frozen=True)
class BlockSpec:
    """A ready block of the palette.

    Attributes:
        name: Registry key, e.g. ``residual_basic``; also the default group name.
        title: Display name, e.g. ``Residual block (basic)``.
        doc: One line for the palette.
        category: Palette section: ``basic``, ``residual``, ``multi-branch``, ``efficient``,
            ``upsampling`` or ``head``.
        params: The parameters, with defaults.
        template: ``(p, shape, t) -> output`` adds the block's nodes to the template ``t``.
    """

    name: str
    title: str
    doc: str
    category: str
    params: tuple[BlockParam, ...]
    template: Callable[[dict[str, Any], tuple[int, ...], _Template], str] = field(repr=False)

    def defaults(self) -> dict[str, Any]:
        """Every parameter with its default (None where it is derived from the input)."""
        return {p.name: p.default for p in self.params}


@dataclass(frozen=True)
class BlockInstance:
    """The nodes of one instantiated block.

    Attributes:
        block: Name of the block.
        group: Group path the nodes were made in.
        nodes: The nodes, in execution order; inputs name each other or :data:`INPUT`.
        output: Name of the node whose output is the block's output.
        params: The resolved parameters (defaults and derived values filled in).
    """

    block: str
    group: str
    nodes: tuple[Node, ...]
    output: str
    params: Mapping[str, Any]


class _Template:
    """Collects the nodes of a block; local names become ``group.local`` node and module names."""

    def __init__(self, group: str) -> None:
        self.group = group
        self.nodes: list[Node] = []

    def _full(self, local: str) -> str:
        return f"{self.group}.{local}" if self.group else local

    def add(
        self, local: str, kind: str, inputs: Sequence[str], *, module: bool = True, **params: Any
    ) -> str:
        """Add a node; ``inputs`` are local names or :data:`INPUT`; returns the local name.

        Args:
            local: Name inside the block; dots make subgroups (``downsample.0``).
            kind: Operation kind.
            inputs: Local names of the inputs, or :data:`INPUT`.
            module: Give it a module path (a submodule of the built model); merges and
                reshapes are written as plain functions instead.
            **params: The node's parameters.
        """
        name = self._full(local)
        parent = local.rpartition(".")[0]
        group = self._full(parent) if parent else self.group
        self.nodes.append(
            Node(
                name=name,
                kind=kind,
                params=dict(params),
                inputs=[i if i == INPUT else self._full(i) for i in inputs],
                group=group,
                module_path=name if module else None,
            )
        )
        return local


# ----------------------------------------------------------------------------- helpers
def _conv(
    t: _Template,
    local: str,
    src: str,
    cin: int,
    cout: int,
    k: int = 3,
    stride: int = 1,
    dilation: int = 1,
    groups: int = 1,
    bias: bool = False,
) -> str:
    return t.add(
        local,
        "conv2d",
        [src],
        in_channels=cin,
        out_channels=cout,
        kernel_size=k,
        stride=stride,
        padding=dilation * (k - 1) // 2,
        dilation=dilation,
        groups=groups,
        bias=bias,
    )


def _bn(t: _Template, local: str, src: str, c: int) -> str:
    return t.add(local, "batch_norm2d", [src], num_features=c)


def _relu(t: _Template, local: str, src: str) -> str:
    return t.add(local, "relu", [src])


def _spatial(shape: tuple[int, ...], block: str) -> tuple[int, int, int]:
    if len(shape) != 3:
        raise BlockError(
            f"{block} needs a (C, H, W) feature map, but the input here has shape "
            f"{tuple(shape)}; insert it before the flatten / linear layers"
        )
    return int(shape[0]), int(shape[1]), int(shape[2])


def _out(p: dict[str, Any], key: str, c: int) -> int:
    return c if p.get(key) is None else int(p[key])


def _projection(t: _Template, cin: int, cout: int, stride: int) -> str:
    """Identity when nothing changes, else a 1x1 convolution and batch norm (option B)."""
    if cin == cout and stride == 1:
        return INPUT
    _conv(t, "downsample.0", INPUT, cin, cout, k=1, stride=stride)
    return _bn(t, "downsample.1", "downsample.0", cout)


# ---------------------------------------------------------------------------- templates
def _t_conv_bn_relu(p: dict, shape: tuple[int, ...], t: _Template) -> str:
    c, _, _ = _spatial(shape, "conv-BN-ReLU")
    cout = _out(p, "out_channels", c)
    _conv(t, "conv", INPUT, c, cout, p["kernel_size"], p["stride"])
    _bn(t, "bn", "conv", cout)
    return _relu(t, "relu", "bn")


def _t_basic(p: dict, shape: tuple[int, ...], t: _Template) -> str:
    c, _, _ = _spatial(shape, "residual block")
    cout, s = _out(p, "out_channels", c), p["stride"]
    _conv(t, "conv1", INPUT, c, cout, 3, s)
    _bn(t, "bn1", "conv1", cout)
    _relu(t, "relu", "bn1")
    _conv(t, "conv2", "relu", cout, cout)
    _bn(t, "bn2", "conv2", cout)
    short = _projection(t, c, cout, s)
    t.add("add", "add", ["bn2", short], module=False)
    return t.add("relu_out", "relu", ["add"])


def _t_bottleneck(p: dict, shape: tuple[int, ...], t: _Template) -> str:
    c, _, _ = _spatial(shape, "bottleneck block")
    width = p["width"] if p.get("width") is not None else max(1, c // 4)
    cout = _out(p, "out_channels", c)
    g, s = p["groups"], p["stride"]
    if width % g:
        raise BlockError(f"bottleneck: width {width} is not divisible by groups={g}")
    _conv(t, "conv1", INPUT, c, width, 1)
    _bn(t, "bn1", "conv1", width)
    _relu(t, "relu1", "bn1")
    _conv(t, "conv2", "relu1", width, width, 3, s, groups=g)
    _bn(t, "bn2", "conv2", width)
    _relu(t, "relu2", "bn2")
    _conv(t, "conv3", "relu2", width, cout, 1)
    _bn(t, "bn3", "conv3", cout)
    short = _projection(t, c, cout, s)
    t.add("add", "add", ["bn3", short], module=False)
    return t.add("relu_out", "relu", ["add"])


def _t_preact(p: dict, shape: tuple[int, ...], t: _Template) -> str:
    c, _, _ = _spatial(shape, "pre-activation block")
    cout, s = _out(p, "out_channels", c), p["stride"]
    _bn(t, "bn1", INPUT, c)
    _relu(t, "relu1", "bn1")
    _conv(t, "conv1", "relu1", c, cout, 3, s)
    _bn(t, "bn2", "conv1", cout)
    _relu(t, "relu2", "bn2")
    _conv(t, "conv2", "relu2", cout, cout)
    short = INPUT
    if c != cout or s != 1:
        # He et al. 2016 (ECCV) take the projection from the pre-activated input.
        short = _conv(t, "shortcut", "relu1", c, cout, k=1, stride=s)
    return t.add("add", "add", ["conv2", short], module=False)


def _t_inception(p: dict, shape: tuple[int, ...], t: _Template) -> str:
    c, _, _ = _spatial(shape, "Inception module")

    def cbr(local: str, src: str, cin: int, cout: int, k: int) -> str:
        _conv(t, f"{local}.conv", src, cin, cout, k)
        _bn(t, f"{local}.bn", f"{local}.conv", cout)
        return _relu(t, f"{local}.relu", f"{local}.bn")

    b1 = cbr("branch1", INPUT, c, p["ch1x1"], 1)
    r3 = cbr("branch2.0", INPUT, c, p["ch3x3red"], 1)
    b2 = cbr("branch2.1", r3, p["ch3x3red"], p["ch3x3"], 3)
    r5 = cbr("branch3.0", INPUT, c, p["ch5x5red"], 1)
    b3 = cbr("branch3.1", r5, p["ch5x5red"], p["ch5x5"], p["branch3_kernel"])
    t.add("branch4.pool", "max_pool2d", [INPUT], kernel_size=3, stride=1, padding=1)
    b4 = cbr("branch4.proj", "branch4.pool", c, p["pool_proj"], 1)
    return t.add("cat", "cat", [b1, b2, b3, b4], module=False, dim=1)


def _t_dense(p: dict, shape: tuple[int, ...], t: _Template) -> str:
    c, _, _ = _spatial(shape, "dense block")
    k, bn_size = p["growth_rate"], p["bn_size"]
    features = [INPUT]
    channels = c
    for i in range(1, p["num_layers"] + 1):
        layer = f"denselayer{i}"
        src = features[0]
        if len(features) > 1:
            src = t.add(f"{layer}.cat", "cat", features, module=False, dim=1)
        _bn(t, f"{layer}.norm1", src, channels)
        _relu(t, f"{layer}.relu1", f"{layer}.norm1")
        _conv(t, f"{layer}.conv1", f"{layer}.relu1", channels, bn_size * k, 1)
        _bn(t, f"{layer}.norm2", f"{layer}.conv1", bn_size * k)
        _relu(t, f"{layer}.relu2", f"{layer}.norm2")
        features.append(_conv(t, f"{layer}.conv2", f"{layer}.relu2", bn_size * k, k, 3))
        channels += k
    return t.add("cat", "cat", features, module=False, dim=1)


def _t_transition(p: dict, shape: tuple[int, ...], t: _Template) -> str:
    c, _, _ = _spatial(shape, "transition")
    cout = _out(p, "out_channels", max(1, int(c * p["compression"])))
    _bn(t, "norm", INPUT, c)
    _relu(t, "relu", "norm")
    _conv(t, "conv", "relu", c, cout, 1)
    return t.add("pool", "avg_pool2d", ["conv"], kernel_size=2, stride=2)


def _t_se(p: dict, shape: tuple[int, ...], t: _Template) -> str:
    c, _, _ = _spatial(shape, "squeeze-and-excitation")
    hidden = max(1, c // p["reduction"])
    t.add("squeeze", "adaptive_avg_pool2d", [INPUT], output_size=1)
    t.add("fc1", "conv2d", ["squeeze"], in_channels=c, out_channels=hidden, kernel_size=1)
    _relu(t, "relu", "fc1")
    t.add("fc2", "conv2d", ["relu"], in_channels=hidden, out_channels=c, kernel_size=1)
    t.add("gate", "sigmoid", ["fc2"])
    return t.add("scale", "mul", [INPUT, "gate"], module=False)


def _t_depthwise(p: dict, shape: tuple[int, ...], t: _Template) -> str:
    c, _, _ = _spatial(shape, "depthwise separable convolution")
    cout = _out(p, "out_channels", c)
    _conv(t, "depthwise", INPUT, c, c, p["kernel_size"], p["stride"], groups=c)
    _bn(t, "bn1", "depthwise", c)
    _relu(t, "relu1", "bn1")
    _conv(t, "pointwise", "relu1", c, cout, 1)
    _bn(t, "bn2", "pointwise", cout)
    return _relu(t, "relu2", "bn2")


def _t_dilated(p: dict, shape: tuple[int, ...], t: _Template) -> str:
    c, _, _ = _spatial(shape, "dilated convolution")
    cout = _out(p, "out_channels", c)
    _conv(t, "conv", INPUT, c, cout, p["kernel_size"], dilation=p["dilation"])
    _bn(t, "bn", "conv", cout)
    return _relu(t, "relu", "bn")


def _t_grouped(p: dict, shape: tuple[int, ...], t: _Template) -> str:
    c, _, _ = _spatial(shape, "grouped convolution")
    cout, g = _out(p, "out_channels", c), p["groups"]
    if c % g or cout % g:
        raise BlockError(
            f"grouped convolution: groups={g} must divide the input channels ({c}) and the "
            f"output channels ({cout}); try groups={_common_divisor(c, cout, g)}"
        )
    _conv(t, "conv", INPUT, c, cout, p["kernel_size"], p["stride"], groups=g)
    _bn(t, "bn", "conv", cout)
    return _relu(t, "relu", "bn")


def _common_divisor(a: int, b: int, near: int) -> int:
    divs = [d for d in range(1, min(a, b) + 1) if a % d == 0 and b % d == 0]
    return min(divs, key=lambda d: (abs(d - near), -d))


def _t_transposed(p: dict, shape: tuple[int, ...], t: _Template) -> str:
    c, _, _ = _spatial(shape, "transposed convolution")
    cout, f = _out(p, "out_channels", c), p["scale"]
    # kernel 2f, padding f/2 gives exactly f times the size for even f (k = s for odd f).
    k, pad = (2 * f, f // 2) if f % 2 == 0 else (f, 0)
    t.add(
        "deconv",
        "conv_transpose2d",
        [INPUT],
        in_channels=c,
        out_channels=cout,
        kernel_size=k,
        stride=f,
        padding=pad,
        bias=False,
    )
    _bn(t, "bn", "deconv", cout)
    return _relu(t, "relu", "bn")


def _t_unpool(p: dict, shape: tuple[int, ...], t: _Template) -> str:
    c, h, w = _spatial(shape, "max-unpool")
    if h % 2 or w % 2:
        raise BlockError(f"max-unpool: the input is {h}x{w}; it needs an even height and width")
    t.add("pool", "max_pool2d", [INPUT], kernel_size=2, stride=2, return_indices=True)
    t.add("pooled", "getitem", ["pool"], module=False, index=0)
    t.add("indices", "getitem", ["pool"], module=False, index=1)
    src = "pooled"
    if p["inner_conv"]:
        _conv(t, "conv", "pooled", c, c, 3)
        _bn(t, "bn", "conv", c)
        src = _relu(t, "relu", "bn")
    return t.add("unpool", "max_unpool2d", [src, "indices"], kernel_size=2, stride=2)


def _t_head_gap(p: dict, shape: tuple[int, ...], t: _Template) -> str:
    c, _, _ = _spatial(shape, "global-average-pool head")
    t.add("avgpool", "adaptive_avg_pool2d", [INPUT], output_size=1)
    t.add("flatten", "flatten", ["avgpool"], module=False, start_dim=1)
    return t.add("fc", "linear", ["flatten"], in_features=c, out_features=p["num_classes"])


def _t_head_mlp(p: dict, shape: tuple[int, ...], t: _Template) -> str:
    features = 1
    for s in shape:
        features *= int(s)
    src = INPUT
    if len(shape) > 1:
        src = t.add("flatten", "flatten", [INPUT], module=False, start_dim=1)
    t.add("fc1", "linear", [src], in_features=features, out_features=p["hidden"])
    _relu(t, "relu", "fc1")
    last = "relu"
    if p["dropout"] > 0:
        last = t.add("dropout", "dropout", ["relu"], p=p["dropout"])
    return t.add("fc2", "linear", [last], in_features=p["hidden"], out_features=p["num_classes"])


# ----------------------------------------------------------------------------- registry
_OUT = BlockParam("out_channels", "int", None, "output channels (default: the input's)", minimum=1)
_STRIDE = BlockParam("stride", "int", 1, "stride (2 halves the height and width)", minimum=1)
_K3 = BlockParam("kernel_size", "int", 3, "filter size (odd keeps the size)", minimum=1)
_CLASSES = BlockParam("num_classes", "int", 10, "number of classes", minimum=1)

BLOCKS: dict[str, BlockSpec] = {
    b.name: b
    for b in (
        BlockSpec(
            "conv_bn_relu",
            "Conv-BN-ReLU",
            "convolution, batch norm and ReLU: the unit of every modern CNN",
            "basic",
            (_OUT, _K3, _STRIDE),
            _t_conv_bn_relu,
        ),
        BlockSpec(
            "residual_basic",
            "Residual block (basic)",
            "two 3x3 conv-BN and a shortcut added back (ResNet-18/34); projects when shapes change",
            "residual",
            (_OUT, _STRIDE),
            _t_basic,
        ),
        BlockSpec(
            "residual_bottleneck",
            "Residual block (bottleneck)",
            "1x1 reduce, 3x3, 1x1 expand, plus shortcut (ResNet-50+; groups>1 gives ResNeXt)",
            "residual",
            (
                _OUT,
                BlockParam("width", "int", None, "inner width (default: a quarter)", minimum=1),
                _STRIDE,
                BlockParam("groups", "int", 1, "groups of the 3x3 (ResNeXt)", minimum=1),
            ),
            _t_bottleneck,
        ),
        BlockSpec(
            "residual_preact",
            "Residual block (pre-activation)",
            "BN-ReLU before each convolution; the shortcut stays a clean identity path",
            "residual",
            (_OUT, _STRIDE),
            _t_preact,
        ),
        BlockSpec(
            "inception",
            "Inception module",
            "parallel 1x1, 3x3, 5x5 and pooling branches concatenated (GoogLeNet)",
            "multi-branch",
            (
                BlockParam("ch1x1", "int", 16, "1x1 branch channels", minimum=1),
                BlockParam("ch3x3red", "int", 24, "3x3 branch: 1x1 reduction", minimum=1),
                BlockParam("ch3x3", "int", 32, "3x3 branch channels", minimum=1),
                BlockParam("ch5x5red", "int", 4, "5x5 branch: 1x1 reduction", minimum=1),
                BlockParam("ch5x5", "int", 8, "5x5 branch channels", minimum=1),
                BlockParam(
                    "branch3_kernel", "choice", 5, "kernel of the third branch", choices=(3, 5)
                ),
                BlockParam("pool_proj", "int", 8, "pooling branch: 1x1 channels", minimum=1),
            ),
            _t_inception,
        ),
        BlockSpec(
            "dense_block",
            "Dense block",
            "each layer sees the concatenation of all earlier maps; adds k channels per layer",
            "multi-branch",
            (
                BlockParam("num_layers", "int", 4, "layers in the block", minimum=1, maximum=64),
                BlockParam("growth_rate", "int", 12, "k: channels each layer adds", minimum=1),
                BlockParam("bn_size", "int", 4, "bottleneck width, in units of k", minimum=1),
            ),
            _t_dense,
        ),
        BlockSpec(
            "transition",
            "Dense transition",
            "BN-ReLU, 1x1 convolution that compresses channels, 2x2 average pool (DenseNet)",
            "multi-branch",
            (
                BlockParam("compression", "float", 0.5, "fraction of channels kept", minimum=0.01),
                _OUT,
            ),
            _t_transition,
        ),
        BlockSpec(
            "squeeze_excitation",
            "Squeeze-and-excitation",
            "global pool, bottleneck MLP and sigmoid gate that reweights the channels (SENet)",
            "efficient",
            (BlockParam("reduction", "int", 16, "channel reduction ratio r", minimum=1),),
            _t_se,
        ),
        BlockSpec(
            "depthwise_separable",
            "Depthwise separable conv",
            "per-channel 3x3 then 1x1 mixing: about 8x fewer multiply-adds (MobileNet)",
            "efficient",
            (_OUT, _K3, _STRIDE),
            _t_depthwise,
        ),
        BlockSpec(
            "dilated_conv",
            "Dilated conv",
            "taps spread d pixels apart: a larger receptive field at the same cost and size",
            "efficient",
            (_OUT, _K3, BlockParam("dilation", "int", 2, "spacing between taps", minimum=1)),
            _t_dilated,
        ),
        BlockSpec(
            "grouped_conv",
            "Grouped conv",
            "channels split into g groups, each convolved alone: g times fewer weights",
            "efficient",
            (_OUT, _K3, _STRIDE, BlockParam("groups", "int", 4, "channel groups", minimum=1)),
            _t_grouped,
        ),
        BlockSpec(
            "transposed_conv",
            "Transposed conv (upsample)",
            "learned upsampling by an integer factor, then BN-ReLU",
            "upsampling",
            (_OUT, BlockParam("scale", "int", 2, "upsampling factor", minimum=1, maximum=16)),
            _t_transposed,
        ),
        BlockSpec(
            "max_unpool",
            "Max pool / unpool pair",
            "2x2 max pool that remembers where the maxima were; unpooling puts them back (SegNet)",
            "upsampling",
            (BlockParam("inner_conv", "bool", True, "a conv-BN-ReLU between pool and unpool"),),
            _t_unpool,
        ),
        BlockSpec(
            "head_gap",
            "Classifier: global pool + linear",
            "global average pooling to one value per channel, then one linear layer",
            "head",
            (_CLASSES,),
            _t_head_gap,
        ),
        BlockSpec(
            "head_mlp",
            "Classifier: flatten + MLP",
            "flatten every value, a hidden layer with ReLU and dropout, then the class scores",
            "head",
            (
                BlockParam("hidden", "int", 128, "hidden units", minimum=1),
                BlockParam("dropout", "float", 0.5, "dropout probability", minimum=0, maximum=1),
                _CLASSES,
            ),
            _t_head_mlp,
        ),
    )
}
"""All ready blocks by name, in palette order."""


def palette() -> dict[str, list[BlockSpec]]:
    """The blocks by palette category, in order."""
    out: dict[str, list[BlockSpec]] = {}
    for b in BLOCKS.values():
        out.setdefault(b.category, []).append(b)
    return out


def get(name: str) -> BlockSpec:
    """The block called ``name``.

    Raises:
        BlockError: Unknown name, with the known ones.
    """
    try:
        return BLOCKS[name]
    except KeyError:
        raise BlockError(f"unknown block {name!r}; choose one of {', '.join(BLOCKS)}") from None


def check_block_params(name: str, params: Mapping[str, Any]) -> list[str]:
    """Every problem with ``params`` for block ``name`` (empty when all is well)."""
    spec = get(name)
    known = {p.name: p for p in spec.params}
    problems = [f"{spec.title} has no parameter {k!r}" for k in params if k not in known]
    for k, v in params.items():
        ps = known.get(k)
        if ps is None or (v is None and ps.default is None):
            continue
        if ps.type == "int" and (not isinstance(v, int) or isinstance(v, bool)):
            problems.append(f"{k} must be an integer, got {v!r}")
            continue
        if ps.type == "float" and (not isinstance(v, (int, float)) or isinstance(v, bool)):
            problems.append(f"{k} must be a number, got {v!r}")
            continue
        if ps.type == "bool" and not isinstance(v, bool):
            problems.append(f"{k} must be true or false, got {v!r}")
            continue
        if ps.type == "choice" and v not in (ps.choices or ()):
            problems.append(f"{k} must be one of {list(ps.choices or ())}, got {v!r}")
            continue
        if ps.minimum is not None and v < ps.minimum:
            problems.append(f"{k}={v!r} is below the minimum {ps.minimum:g}")
        if ps.maximum is not None and v > ps.maximum:
            problems.append(f"{k}={v!r} is above the maximum {ps.maximum:g}")
    return problems


def instantiate(
    name: str,
    in_shape: Sequence[int] | None,
    params: Mapping[str, Any] | None = None,
    group: str | None = None,
) -> BlockInstance:
    """The nodes of block ``name`` for an input of ``in_shape``.

    Args:
        name: Block name (a key of :data:`BLOCKS`).
        in_shape: Shape (without batch) of the tensor the block takes, e.g. ``(64, 8, 8)``.
        params: Parameter values; missing ones take their defaults.
        group: Group path for the nodes (node names are ``group.local``); the block name when
            None.

    Returns:
        The :class:`BlockInstance`; its nodes name :data:`INPUT` where they read the input.

    Raises:
        BlockError: Unknown block, a bad parameter, or an unknown or unsuitable input shape.
    """
    spec = get(name)
    given = dict(params or {})
    problems = check_block_params(name, given)
    if problems:
        raise BlockError(f"{spec.title}: " + "; ".join(problems))
    if in_shape is None:
        raise BlockError(
            f"{spec.title}: the input shape here is unknown (an error upstream); fix that first"
        )
    p = spec.defaults()
    p.update(given)
    t = _Template(name if group is None else group)
    out = spec.template(p, tuple(int(s) for s in in_shape), t)
    resolved = dict(p)
    return BlockInstance(name, t.group, tuple(t.nodes), t._full(out), resolved)
