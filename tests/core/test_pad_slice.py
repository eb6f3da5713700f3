"""Padding (``pad``) and basic slicing (``slice``): shapes, errors, receptive fields, tracing.

The CIFAR ResNets of He et al. (option-A shortcut: subsample, then zero-pad the new channels)
must trace without opaque nodes, with shapes equal to torch's and receptive fields equal to a
derivation written out here and to the support of autograd's gradient.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from cnnviz.core import ops, zoo
from cnnviz.core.analysis import analyse
from cnnviz.core.build import build_module
from cnnviz.core.graph import ArchGraph
from cnnviz.core.ops import ParamError, ShapeError
from cnnviz.core.trace import from_module


# --------------------------------------------------------------------- shape rules
@settings(max_examples=60, deadline=None)
@given(
    shape=st.lists(st.integers(1, 6), min_size=1, max_size=4).map(tuple),
    data=st.data(),
)
def test_constant_pad_shape_matches_torch(shape, data):
    pairs = data.draw(st.integers(1, len(shape)))
    pad = data.draw(st.lists(st.integers(-1, 3), min_size=2 * pairs, max_size=2 * pairs))
    x = torch.zeros(1, *shape)
    spec = ops.get("pad")
    p = spec.resolve({"pad": pad, "value": 0.5})
    try:
        expected = tuple(F.pad(x, pad, value=0.5).shape[1:])
    except RuntimeError:
        expected = None
    if expected is None or 0 in expected:
        with pytest.raises(ShapeError):
            spec.shape(p, [shape])
    else:
        assert spec.shape(p, [shape]) == expected
        assert tuple(spec.build(p)(x).shape[1:]) == expected


_SLICE_PART = st.tuples(
    st.one_of(st.none(), st.integers(-6, 6)),
    st.one_of(st.none(), st.integers(-6, 6)),
    st.one_of(st.none(), st.integers(1, 3)),
)


@settings(max_examples=80, deadline=None)
@given(
    shape=st.lists(st.integers(1, 7), min_size=1, max_size=3).map(tuple),
    parts=st.lists(_SLICE_PART, min_size=0, max_size=3),
    ellipsis=st.booleans(),
)
def test_slice_shape_matches_torch(shape, parts, ellipsis):
    parts = parts[: len(shape)]
    key = (slice(None), *(slice(*p) for p in parts))
    if ellipsis:
        key = (Ellipsis, *key[1:]) if len(key) <= len(shape) else key
    text = ops.slice_index(key, len(shape))
    assert text is not None
    x = torch.zeros(1, *shape)
    expected = tuple(x[key].shape[1:])
    spec = ops.get("slice")
    p = spec.resolve({"index": text})
    if 0 in expected:
        with pytest.raises(ShapeError, match="selects nothing"):
            spec.shape(p, [shape])
    else:
        assert spec.shape(p, [shape]) == expected
        assert tuple(spec.build(p)(x).shape[1:]) == expected


def test_slice_index_text_reads_like_the_code():
    s = slice
    assert ops.slice_index((s(None), s(None), s(None, None, 2), s(None, None, 2)), 3) == (
        ":, :, ::2, ::2"
    )
    assert ops.slice_index((Ellipsis, s(1, -1)), 3) == "..., 1:-1"
    assert ops.slice_index(s(None), 3) == ":"
    # not basic slicing that keeps the batch: left to an opaque node
    assert ops.slice_index((s(0, 1), s(None)), 3) is None
    assert ops.slice_index((s(None), 0), 3) is None
    assert ops.slice_index((s(None), None), 3) is None
    assert ops.slice_index((s(None),) * 5, 3) is None


# --------------------------------------------------------------------------- errors
def _error(kind: str, params: dict, shape: tuple):
    spec = ops.get(kind)
    with pytest.raises((ShapeError, ParamError)) as info:
        spec.shape(spec.resolve(params), [shape])
    return info.value


def test_pad_errors_name_the_problem_and_a_fix():
    e = _error("pad", {"pad": [3, 3], "mode": "reflect"}, (2, 3))
    assert "reflect padding of 3 needs more than 3 values along L" in e.problem
    assert e.fix == "pad by at most 2, or use replicate padding"
    e = _error("pad", {"pad": [1, 1, 1]}, (3, 4, 4))
    assert "pairs" in e.problem and "even number" in e.fix
    e = _error("pad", {"pad": [0] * 8}, (3, 4, 4))
    assert "4 pairs" in e.problem and e.fix == "give at most 6 values"
    e = _error("pad", {"pad": [-2, -2]}, (3, 4, 4))
    assert "removes all of W" in e.problem
    e = _error("pad", {"pad": [1, 1, 1, 1], "mode": "reflect"}, (2, 3, 4, 4))
    assert "reflect padding of 2 dimension(s) needs a 3-D or 4-D tensor" in e.problem
    with pytest.raises(NotImplementedError):  # torch agrees
        F.pad(torch.zeros(1, 2, 3, 4, 4), (1, 1, 1, 1), mode="reflect")
    assert ops.check_params("pad", {"pad": [1, 1], "mode": "mirror"})


def test_slice_errors_name_the_problem_and_a_fix():
    e = _error("slice", {"index": "0:1, :, ::2"}, (3, 4, 4))
    assert "slices the batch dimension" in e.problem and e.fix.startswith("begin the index")
    e = _error("slice", {"index": ":, x:2"}, (3, 4, 4))
    assert "'x' in index item 'x:2' is not an integer" in e.problem
    e = _error("slice", {"index": ":, 1"}, (3, 4, 4))
    assert "is not a slice" in e.problem
    e = _error("slice", {"index": ":, ::-1"}, (3, 4, 4))
    assert "not positive" in e.problem
    e = _error("slice", {"index": ":, :, :, :, :"}, (3, 4, 4))
    assert e.actual == "5 entries"
    e = _error("slice", {"index": ":, 5:"}, (3, 4, 4))
    assert "selects nothing from C of size 3" in e.problem


def test_analysis_reports_a_bad_index_on_the_node():
    g = ArchGraph()
    g.add_input("input", (3, 8, 8))
    g.add("sub", "slice", ["input"], index="::2, :")
    a = analyse(g)
    assert [name for name, _ in a.errors] == ["sub"]
    assert "batch" in a["sub"].error and a["sub"].fix


# ----------------------------------------------------------------- formulas, counts
def test_formulas_show_the_numbers():
    g = ArchGraph()
    g.add_input("input", (16, 32, 32))
    g.add("sub", "slice", ["input"], index=":, :, ::2, ::2")
    g.add("pad", "pad", ["sub"], pad=[0, 0, 0, 0, 0, 16])
    a = analyse(g)
    assert a.ok, a.errors
    assert a["sub"].output_shape == (16, 16, 16)
    assert a["sub"].formulas["output_shape"] == (
        "output = x[:, :, ::2, ::2] = (16, 16, 16)",
        "H_out = ceil((32 - 0)/2) = 16",
        "W_out = ceil((32 - 0)/2) = 16",
    )
    assert a["pad"].formulas["output_shape"][0] == "C_out = 16 + 0 + 16 = 32"
    assert a["pad"].output_shape == (32, 16, 16)
    # jump 1*2 = 2, padding 0 - 0*1 = 0; the pad adds channels only
    assert (
        "H, W: jump = 1*2 = 2; padding = 0 - 0*1 = 0; size = 1 unchanged"
        in (a["sub"].formulas["rf"])
    )
    assert a["pad"].rf == a["sub"].rf
    for name in ("sub", "pad"):
        assert (a[name].params, a[name].macs, a[name].ops) == (0, 0, 0)


# ------------------------------------------------------------------ receptive field
def test_rf_by_hand_through_pad_and_strided_slice():
    """conv 3x3 (size 3, jump 1, padding 0); pad 2 on the left/top (padding 0 + 2*1 = 2);
    slice 1::2 (jump 2, padding 2 - 1*1 = 1); conv 3x3 (size 3 + 2*2 = 7, padding 1 + 0).
    Unit 0 of the output: centre -1 + (7-1)/2 = 2 in the input."""
    g = ArchGraph()
    g.add_input("input", (1, 20, 20))
    g.add("c1", "conv2d", ["input"], in_channels=1, out_channels=1, kernel_size=3)
    g.add("pad", "pad", ["c1"], pad=[2, 0, 2, 0])
    g.add("sub", "slice", ["pad"], index=":, :, 1::2, 1::2")
    g.add("c2", "conv2d", ["sub"], in_channels=1, out_channels=1, kernel_size=3)
    rf = analyse(g)["c2"].rf
    assert (rf.size, rf.jump, rf.padding) == ((7, 7), (2, 2), (1, 1))


def _positive(model: nn.Module) -> nn.Module:
    with torch.no_grad():
        for p in model.parameters():
            p.uniform_(0.1, 1.0)
    return model.double().eval()


def _assert_box_is_gradient_support(
    x: torch.Tensor, y: torch.Tensor, rf, minimum: int = 4, limit: int = 8
) -> None:
    """Output units whose box lies inside the input (up to ``limit`` of them, spread over the
    map) depend on exactly that box of input pixels."""
    n_h, n_w = x.shape[-2:]
    boxes = []
    for i in range(y.shape[-2]):
        for j in range(y.shape[-1]):
            top = -rf.padding[0] + i * rf.jump[0]
            left = -rf.padding[1] + j * rf.jump[1]
            if top >= 0 and left >= 0 and top + rf.size[0] <= n_h and left + rf.size[1] <= n_w:
                boxes.append((i, j, top, left))
    assert len(boxes) >= minimum
    for i, j, top, left in boxes[:: max(1, len(boxes) // limit)]:
        (grad,) = torch.autograd.grad(y[0, 0, i, j], x, retain_graph=True)
        support = grad[0].abs().sum(0)
        rows = torch.nonzero(support.sum(1)).flatten()
        cols = torch.nonzero(support.sum(0)).flatten()
        assert (int(rows.min()), int(rows.max())) == (top, top + rf.size[0] - 1), (i, j)
        assert (int(cols.min()), int(cols.max())) == (left, left + rf.size[1] - 1), (i, j)


class OptionA(nn.Module):
    """A user's option-A residual stage written with slicing and F.pad, as in many repos."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, 4, 3, padding=1)
        self.conv1 = nn.Conv2d(4, 8, 3, stride=2, padding=1)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.head = nn.Conv2d(8, 1, 3)

    def forward(self, x):
        x = self.stem(x)
        shortcut = F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, 2, 2))
        return self.head(torch.relu(self.conv2(torch.relu(self.conv1(x))) + shortcut))


def test_option_a_written_with_slicing_traces_builds_and_has_the_right_field():
    torch.manual_seed(0)
    model = _positive(OptionA())
    graph = from_module(model, (1, 40, 40))
    kinds = {n.name: n.kind for n in graph}
    assert "opaque" not in kinds.values()
    assert kinds["getitem"] == "slice" and graph["getitem"].params == {"index": ":, :, ::2, ::2"}
    assert kinds["pad"] == "pad" and graph["pad"].params["pad"] == [0, 0, 0, 0, 2, 2]
    a = analyse(graph)
    assert a.ok, a.errors
    assert not a.warnings, a.warnings  # both branches are centred alike
    x = torch.rand(1, 1, 40, 40, dtype=torch.float64) + 0.5
    with torch.no_grad():
        shortcut = F.pad(model.stem(x)[:, :, ::2, ::2], (0, 0, 0, 0, 2, 2))
    assert a["pad"].output_shape == tuple(shortcut.shape[1:]) == (8, 20, 20)
    # stem: 3, jump 1, padding 1; conv1 s2: 5, jump 2, padding 2; conv2: 9, padding 4;
    # shortcut: 3, jump 2, padding 1 (centred alike); head 3x3: 9 + 2*2 = 13, padding 4.
    rf = a[graph.outputs[0]].rf
    assert (rf.size, rf.jump, rf.padding) == ((13, 13), (2, 2), (4, 4))
    built = build_module(graph).double().eval()
    built.load_state_dict(model.state_dict())
    with torch.no_grad():
        assert torch.allclose(built(x), model(x))
    x.requires_grad_(True)
    _assert_box_is_gradient_support(x, model(x), rf)


def test_padding_modules_trace_to_pad():
    model = nn.Sequential(
        nn.ConstantPad2d((1, 2, 0, 1), 0.5),
        nn.ReflectionPad2d(1),
        nn.ReplicationPad2d((2, 0, 0, 0)),
        nn.ZeroPad2d(1),
        nn.CircularPad2d(1),
    )
    graph = from_module(model, (2, 6, 6))
    assert [n.kind for n in graph][1:] == ["pad", "pad", "pad", "zero_pad2d", "pad"]
    assert graph["0"].params == {"pad": [1, 2, 0, 1], "mode": "constant", "value": 0.5}
    assert graph["1"].params["mode"] == "reflect" and graph["2"].params["mode"] == "replicate"
    assert graph["4"].params["mode"] == "circular"
    a = analyse(graph)
    x = torch.randn(1, 2, 6, 6)
    assert a["4"].output_shape == tuple(model(x).shape[1:])
    built = build_module(graph).eval()
    assert torch.equal(built(x), model(x))
    # the field's padding grows by each top/left pad: rows 0 + 1 + 0 + 1 + 1 = 3,
    # columns 1 + 1 + 2 + 1 + 1 = 6; a pad neither widens the field nor changes the jump
    assert a["4"].rf.padding == (3, 6) and a["4"].rf.size == (1, 1) and a["4"].rf.jump == (1, 1)


# ------------------------------------------------------------------- CIFAR ResNets
def _cifar_rf(n: int) -> tuple[int, int, int]:
    """Size, jump and padding at the end of stage 3 of ResNet-(6n+2), by hand.

    conv1 3x3: size 3, jump 1, padding 1. Stage 1: 2n convs 3x3 at jump 1: size + 2*2n,
    padding + 2n. Stage 2: a stride-2 conv at jump 1 (+2, jump 2, padding +1), then 2n-1 convs
    at jump 2 (+4 each, padding +2 each). Stage 3: stride-2 conv at jump 2 (+4, jump 4,
    padding +2), then 2n-1 convs at jump 4 (+8 each, padding +4 each). The option-A shortcut
    (1x1 subsample, zero channels) is narrower and centred alike, so the union is the main path.
    """
    size, pad = 3 + 4 * n, 1 + 2 * n
    size, pad = size + 2 + 4 * (2 * n - 1), pad + 1 + 2 * (2 * n - 1)
    size, pad = size + 4 + 8 * (2 * n - 1), pad + 2 + 4 * (2 * n - 1)
    return size, 4, pad


@pytest.mark.parametrize("name,n", [("resnet20", 3), ("resnet32", 5), ("resnet56", 9)])
def test_cifar_resnets_trace_without_opaque_nodes(name, n):
    model, shape = zoo.build(name)
    graph = from_module(model.eval(), shape, name=name)
    assert not [x.name for x in graph if x.kind == "opaque"]
    assert sum(1 for x in graph if x.kind == "pad") == 2  # one per stage change
    a = analyse(graph)
    assert a.ok, a.errors
    assert not a.warnings, a.warnings[:3]
    size, jump, pad = _cifar_rf(n)
    assert (size, jump, pad) == {3: (81, 4, 40), 5: (137, 4, 68), 9: (249, 4, 124)}[n]
    rf = a.groups["layer3"].rf
    assert (rf.size, rf.jump, rf.padding) == ((size, size), (jump, jump), (pad, pad))
    assert a.groups["layer3"].output_shape == (64, 8, 8)
    assert a.total_params == sum(p.numel() for p in model.parameters())
    assert a[graph.outputs[0]].rf.global_


def test_resnet20_field_equals_the_gradient_support():
    """Positive weights and inputs keep every ReLU open, so the gradient of a unit of layer3
    is non-zero exactly on its receptive field (an input of 88 keeps four 81 boxes inside)."""
    torch.manual_seed(0)
    model, _ = zoo.build("resnet20", in_channels=1)
    model = _positive(model)
    graph = from_module(model, (1, 88, 88))
    rf = analyse(graph).groups["layer3"].rf
    assert rf.size == (81, 81)
    x = (torch.rand(1, 1, 88, 88, dtype=torch.float64) + 0.5).requires_grad_(True)
    y = model.layer3(model.layer2(model.layer1(model.relu(model.bn1(model.conv1(x))))))
    # the shortcut's zero channels must not vanish from the gradient: check several units
    _assert_box_is_gradient_support(x, y, rf, minimum=4)
