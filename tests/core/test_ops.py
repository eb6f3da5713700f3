"""The operation registry against PyTorch itself and hand calculations."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from cnnviz.core import ops
from cnnviz.core.ops import MultiShape, ParamError, ShapeError
from cnnviz.errors import CnnvizError

# kind -> list of (params, per-sample input shapes); every registered kind needs one.
CASES: dict[str, list[tuple[dict, list[tuple[int, ...]]]]] = {
    "conv1d": [({"in_channels": 4, "out_channels": 8, "kernel_size": 3, "stride": 2}, [(4, 17)])],
    "conv2d": [
        ({"in_channels": 1, "out_channels": 6, "kernel_size": 5}, [(1, 32, 32)]),
        (
            {
                "in_channels": 8,
                "out_channels": 16,
                "kernel_size": [3, 5],
                "stride": [2, 1],
                "padding": [1, 2],
                "dilation": [2, 1],
                "groups": 4,
                "bias": False,
            },
            [(8, 15, 14)],
        ),
        ({"in_channels": 3, "out_channels": 4, "kernel_size": 4, "padding": "same"}, [(3, 9, 9)]),
        ({"in_channels": 3, "out_channels": 4, "kernel_size": 3, "padding": "valid"}, [(3, 9, 9)]),
        (
            {
                "in_channels": 3,
                "out_channels": 4,
                "kernel_size": 3,
                "padding": 1,
                "padding_mode": "reflect",
            },
            [(3, 9, 9)],
        ),
    ],
    "conv3d": [({"in_channels": 2, "out_channels": 3, "kernel_size": 3}, [(2, 5, 6, 7)])],
    "conv_transpose1d": [
        ({"in_channels": 4, "out_channels": 2, "kernel_size": 4, "stride": 2}, [(4, 9)])
    ],
    "conv_transpose2d": [
        (
            {
                "in_channels": 8,
                "out_channels": 4,
                "kernel_size": 3,
                "stride": 2,
                "padding": 1,
                "output_padding": 1,
            },
            [(8, 7, 7)],
        ),
        (
            {"in_channels": 6, "out_channels": 9, "kernel_size": [4, 2], "stride": 2, "groups": 3},
            [(6, 5, 6)],
        ),
    ],
    "linear": [
        ({"in_features": 400, "out_features": 120}, [(400,)]),
        ({"in_features": 16, "out_features": 64, "bias": False}, [(7, 7, 16)]),
    ],
    "max_pool1d": [({"kernel_size": 3, "stride": 2}, [(4, 11)])],
    "max_pool2d": [
        ({"kernel_size": 2, "stride": 2}, [(6, 28, 28)]),
        ({"kernel_size": 3, "stride": 2, "ceil_mode": True}, [(96, 55, 55)]),
        ({"kernel_size": 3, "stride": 2, "padding": 1, "dilation": 2}, [(4, 12, 13)]),
        ({"kernel_size": 2, "return_indices": True}, [(4, 8, 8)]),
    ],
    "avg_pool1d": [({"kernel_size": 2}, [(3, 9)])],
    "avg_pool2d": [
        ({"kernel_size": 3, "stride": 1, "padding": 1, "count_include_pad": False}, [(4, 9, 9)]),
        ({"kernel_size": 2, "ceil_mode": True, "divisor_override": 3}, [(4, 9, 9)]),
    ],
    "adaptive_avg_pool1d": [({"output_size": 4}, [(3, 10)])],
    "adaptive_avg_pool2d": [
        ({"output_size": 1}, [(8, 7, 7)]),
        ({"output_size": [6, 6]}, [(8, 13, 13)]),
    ],
    "adaptive_max_pool1d": [({"output_size": 2}, [(3, 10)])],
    "adaptive_max_pool2d": [({"output_size": [2, 3]}, [(8, 7, 7)])],
    "global_avg_pool2d": [({}, [(8, 7, 7)])],
    "global_max_pool2d": [({}, [(8, 7, 5)])],
    "max_unpool2d": [({"kernel_size": 2}, [(4, 4, 4), (4, 4, 4)])],
    "upsample": [
        ({"scale_factor": 2.0}, [(3, 5, 6)]),
        (
            {"size": [7, 9], "scale_factor": None, "mode": "bilinear", "align_corners": False},
            [(3, 5, 6)],
        ),
    ],
    "zero_pad2d": [({"padding": 2}, [(3, 5, 5)]), ({"padding": [1, 2, 3, 4]}, [(3, 5, 5)])],
    "pad": [
        ({"pad": [1, 2]}, [(3, 5, 5)]),
        ({"pad": [0, 0, 0, 0, 0, 4]}, [(3, 5, 5)]),  # channels: option-A shortcut
        ({"pad": [-1, 0, 2, 1], "value": 1.5}, [(3, 5, 5)]),
        ({"pad": [1, 1, 2, 0], "mode": "reflect"}, [(3, 5, 5)]),
        ({"pad": [2, 3], "mode": "replicate"}, [(4, 9)]),
        ({"pad": [1, 1, 1, 1], "mode": "circular"}, [(2, 4, 4)]),
    ],
    "slice": [
        ({"index": ":, :, ::2, ::2"}, [(3, 8, 7)]),
        ({"index": "..., 1:-1, 2:"}, [(3, 8, 8)]),
        ({"index": ":, 2:5"}, [(6, 4, 4)]),
        ({"index": ":, :, 1::3, :5:2"}, [(2, 10, 9)]),
    ],
    "batch_norm1d": [({"num_features": 10}, [(10,)]), ({"num_features": 4}, [(4, 9)])],
    "batch_norm2d": [
        ({"num_features": 6}, [(6, 5, 5)]),
        ({"num_features": 6, "affine": False}, [(6, 5, 5)]),
    ],
    "instance_norm2d": [({"num_features": 6, "affine": True}, [(6, 5, 5)])],
    "group_norm": [({"num_groups": 2, "num_channels": 6}, [(6, 5, 5)])],
    "layer_norm": [
        ({"normalized_shape": [8]}, [(5, 5, 8)]),
        ({"normalized_shape": [4, 5, 5]}, [(4, 5, 5)]),
    ],
    "layer_norm2d": [({"num_channels": 6}, [(6, 5, 5)])],
    "local_response_norm": [({"size": 5, "alpha": 1e-4, "beta": 0.75, "k": 2.0}, [(12, 5, 5)])],
    "relu": [({}, [(3, 4, 4)])],
    "relu6": [({}, [(3, 4, 4)])],
    "leaky_relu": [({"negative_slope": 0.2}, [(3, 4, 4)])],
    "elu": [({}, [(3, 4, 4)])],
    "gelu": [({"approximate": "tanh"}, [(3, 4, 4)])],
    "silu": [({}, [(3, 4, 4)])],
    "sigmoid": [({}, [(3, 4, 4)])],
    "tanh": [({}, [(3, 4, 4)])],
    "hardswish": [({}, [(3, 4, 4)])],
    "hardsigmoid": [({}, [(3, 4, 4)])],
    "mish": [({}, [(3, 4, 4)])],
    "softplus": [({}, [(3, 4, 4)])],
    "softmax": [({"dim": 1}, [(10,)]), ({"dim": 1}, [(3, 4, 4)])],
    "log_softmax": [({"dim": -1}, [(10,)])],
    "identity": [({}, [(3, 4, 4)])],
    "dropout": [({"p": 0.3}, [(3, 4, 4)])],
    "dropout2d": [({"p": 0.3}, [(3, 4, 4)])],
    "stochastic_depth": [({"p": 0.2, "mode": "row"}, [(3, 4, 4)])],
    "add": [
        ({}, [(3, 4, 4), (3, 4, 4)]),
        ({}, [(3, 4, 4), (3, 1, 1), (3, 4, 4)]),
        ({"scalar": 1.5}, [(3, 4, 4)]),
    ],
    "mul": [({}, [(8, 4, 4), (8, 1, 1)]), ({"scalar": 0.5}, [(3, 4, 4)])],
    "cat": [({"dim": 1}, [(3, 4, 4), (5, 4, 4)]), ({"dim": -1}, [(3, 4, 4), (3, 4, 2)])],
    "flatten": [({}, [(16, 5, 5)]), ({"start_dim": 2}, [(16, 5, 5)])],
    "reshape": [({"shape": [4, -1]}, [(16, 5, 5)])],
    "permute": [({"dims": [0, 2, 3, 1]}, [(16, 5, 7)])],
    "transpose": [({"dim0": 1, "dim1": 2}, [(16, 5, 7)])],
    "channel_shuffle": [({"groups": 2}, [(8, 3, 3)])],
    "mean": [({"dim": [2, 3]}, [(8, 5, 5)]), ({"dim": [-1], "keepdim": True}, [(8, 5, 5)])],
    "chunk": [({"chunks": 2, "dim": 1}, [(8, 3, 3)]), ({"chunks": 3, "dim": 1}, [(8, 3, 3)])],
    "getitem": [({"index": 1}, [MultiShape(((4, 3, 3), (4, 3, 3)))])],
}
SPECIAL = {"input", "parameter"}


def _case_ids():
    for kind, cases in CASES.items():
        for k, (params, shapes) in enumerate(cases):
            yield pytest.param(kind, params, shapes, id=f"{kind}-{k}")


def test_every_kind_has_a_case():
    missing = set(ops.REGISTRY) - set(CASES) - SPECIAL
    assert not missing, f"add test cases for {sorted(missing)}"


def _inputs(kind: str, shapes: list, gen: torch.Generator) -> list:
    if kind == "max_unpool2d":
        x = torch.randn(2, shapes[0][0], shapes[0][1] * 2, shapes[0][2] * 2, generator=gen)
        return list(nn.MaxPool2d(2, return_indices=True)(x))
    if kind == "getitem":
        return [tuple(torch.randn(2, *s, generator=gen) for s in shapes[0])]
    return [torch.randn(2, *s, generator=gen) for s in shapes]


def _shapes(y) -> object:
    if isinstance(y, (tuple, list)):
        return MultiShape(tuple(tuple(t.shape[1:]) for t in y))
    return tuple(y.shape[1:])


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
@pytest.mark.parametrize("kind,params,shapes", list(_case_ids()))
def test_kind_against_torch(kind: str, params: dict, shapes: list):
    spec = ops.get(kind)
    assert spec.family in {
        "convolution",
        "pooling",
        "normalisation",
        "activation",
        "linear",
        "merge",
        "reshape",
        "regularisation",
        "opaque",
        "input",
    }
    assert all(p.doc for p in spec.params), "every parameter has a one-line doc"
    p = spec.resolve(params)
    out = spec.shape(p, shapes)
    module = spec.build(p).eval()
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        y = module(*_inputs(kind, shapes, gen))
    assert _shapes(y) == out
    counts = spec.counts(p, shapes, out)
    assert counts.params == sum(t.numel() for t in module.parameters())
    assert counts.buffers == sum(t.numel() for t in module.buffers())
    assert counts.macs >= 0 and counts.ops >= 0
    formulas = spec.formulas(p, shapes, out, counts)
    assert formulas["output_shape"]


@pytest.mark.parametrize("kind,params,shapes", list(_case_ids()))
def test_params_round_trip_through_the_module(kind: str, params: dict, shapes: list):
    """Reading the built module's attributes gives back the same parameters."""
    spec = ops.get(kind)
    p = spec.resolve(params)
    module = spec.build(p)
    if ops.kind_for_module(module) != kind:
        pytest.skip("built as a helper module shared by several kinds")
    again = spec.resolve(ops.params_from_module(kind, module))
    assert spec.shape(again, shapes) == spec.shape(p, shapes)
    assert spec.counts(again, shapes, spec.shape(again, shapes)) == spec.counts(
        p, shapes, spec.shape(p, shapes)
    )


# ---------------------------------------------------------------- MACs by hand
def test_conv_macs_by_hand():
    spec = ops.get("conv2d")
    p = spec.resolve(
        {
            "in_channels": 8,
            "out_channels": 16,
            "kernel_size": [3, 5],
            "stride": [2, 1],
            "padding": [1, 2],
            "groups": 4,
        }
    )
    out = spec.shape(p, [(8, 15, 14)])
    # H: floor((15 + 2 - 3)/2) + 1 = 8; W: floor((14 + 4 - 5)/1) + 1 = 14
    assert out == (16, 8, 14)
    c = spec.counts(p, [(8, 15, 14)], out)
    assert c.macs == (8 // 4) * 3 * 5 * 16 * 8 * 14
    assert c.params == 16 * (8 // 4 * 3 * 5) + 16


def test_transposed_conv_macs_by_hand():
    spec = ops.get("conv_transpose2d")
    p = spec.resolve(
        {"in_channels": 6, "out_channels": 9, "kernel_size": [4, 2], "stride": 2, "groups": 3}
    )
    out = spec.shape(p, [(6, 5, 6)])
    # (5-1)*2 + (4-1) + 1 = 12; (6-1)*2 + (2-1) + 1 = 12
    assert out == (9, 12, 12)
    c = spec.counts(p, [(6, 5, 6)], out)
    assert c.macs == 6 * (9 // 3) * 4 * 2 * 5 * 6
    assert c.params == 6 * (9 // 3) * 4 * 2 + 9


def test_linear_macs_count_every_position():
    spec = ops.get("linear")
    p = spec.resolve({"in_features": 16, "out_features": 64})
    assert spec.counts(p, [(7, 7, 16)], (7, 7, 64)).macs == 16 * 64 * 49
    assert spec.counts(p, [(16,)], (64,)).macs == 16 * 64


def test_elementwise_ops_are_not_macs():
    for kind, shape in (("relu", (6, 28, 28)), ("batch_norm2d", (6, 28, 28))):
        spec = ops.get(kind)
        p = spec.resolve({"num_features": 6} if kind == "batch_norm2d" else {})
        c = spec.counts(p, [shape], shape)
        assert c.macs == 0
        assert c.ops == (1 if kind == "relu" else 2) * 6 * 28 * 28
    spec = ops.get("max_pool2d")
    p = spec.resolve({"kernel_size": 2})
    assert spec.counts(p, [(6, 28, 28)], (6, 14, 14)).ops == 4 * 6 * 14 * 14
    spec = ops.get("add")
    assert spec.counts({}, [(3, 4, 4)] * 3, (3, 4, 4)).ops == 2 * 48


# ------------------------------------------------------------------ formulas
def test_lenet_c1_formulas_have_the_numbers():
    spec = ops.get("conv2d")
    p = spec.resolve({"in_channels": 1, "out_channels": 6, "kernel_size": 5})
    out = spec.shape(p, [(1, 32, 32)])
    c = spec.counts(p, [(1, 32, 32)], out)
    f = spec.formulas(p, [(1, 32, 32)], out, c)
    text = "\n".join(f["output_shape"])
    assert "floor((32 - 5 + 2*0)/1) + 1 = 28" in text
    assert "6*(1*5*5 + 1) = 156" in f["params"][-1]
    assert f["macs"][-1] == "MACs = (1/1)*5*5*6*28*28 = 117,600"
    assert c.macs == 117_600 and c.params == 156


def test_dilated_conv_formula_shows_dilation():
    spec = ops.get("conv2d")
    p = spec.resolve(
        {"in_channels": 3, "out_channels": 4, "kernel_size": 3, "dilation": 2, "padding": 1}
    )
    out = spec.shape(p, [(3, 32, 32)])
    text = "\n".join(
        spec.formulas(p, [(3, 32, 32)], out, spec.counts(p, [(3, 32, 32)], out))["output_shape"]
    )
    # (W + 2P - D*(K-1) - 1)/S + 1 = (32 + 2 - 4 - 1)/1 + 1 = 30
    assert "(32 + 2*1 - 2*(3-1) - 1)/1) + 1 = 30" in text
    assert out == (4, 30, 30)


def test_linear_and_pool_formulas():
    spec = ops.get("linear")
    p = spec.resolve({"in_features": 400, "out_features": 120})
    f = spec.formulas(p, [(400,)], (120,), spec.counts(p, [(400,)], (120,)))
    assert "400*120 + 120 = 48,120" in f["params"][-1]
    spec = ops.get("max_pool2d")
    p = spec.resolve({"kernel_size": 2, "stride": 2})
    f = spec.formulas(p, [(6, 28, 28)], (6, 14, 14), spec.counts(p, [(6, 28, 28)], (6, 14, 14)))
    assert "floor((28 - 2 + 2*0)/2) + 1 = 14" in "\n".join(f["output_shape"])


# -------------------------------------------------------------------- errors
def test_linear_in_features_fix():
    spec = ops.get("linear")
    with pytest.raises(ShapeError) as e:
        spec.shape(spec.resolve({"in_features": 400, "out_features": 120}), [(784,)])
    assert "in_features should be 784" in str(e.value)
    assert e.value.expected == 400 and e.value.actual == 784
    assert isinstance(e.value, CnnvizError)


def test_linear_on_an_unflattened_map_suggests_flatten():
    spec = ops.get("linear")
    with pytest.raises(ShapeError) as e:
        spec.shape(spec.resolve({"in_features": 400, "out_features": 120}), [(16, 5, 5)])
    assert "flatten" in str(e.value)


def test_add_channel_mismatch_suggests_projection():
    with pytest.raises(ShapeError) as e:
        ops.get("add").shape({}, [(16, 14, 14), (32, 14, 14)])
    msg = str(e.value)
    assert "channels differ: 16 vs 32" in msg
    assert "a 1x1 convolution on the shortcut (a projection) would match them" in msg


def test_conv_channel_mismatch_and_too_small_input():
    spec = ops.get("conv2d")
    with pytest.raises(ShapeError, match="in_channels should be 3"):
        spec.shape(
            spec.resolve({"in_channels": 1, "out_channels": 6, "kernel_size": 5}), [(3, 32, 32)]
        )
    with pytest.raises(ShapeError, match="larger than the padded input"):
        spec.shape(
            spec.resolve({"in_channels": 1, "out_channels": 6, "kernel_size": 5}), [(1, 3, 3)]
        )


def test_param_errors():
    assert ops.check_params("conv2d", {"in_channels": 1, "out_channels": 6}) == [
        "parameter 'kernel_size' must be given (filter size)"
    ]
    problems = ops.check_params(
        "conv2d", {"in_channels": 0, "out_channels": 6, "kernel_size": 3, "strid": 2}
    )
    assert any("did you mean 'stride'" in p for p in problems)
    assert any("below the minimum 1" in p for p in problems)
    with pytest.raises(ParamError):
        ops.get("conv2d").resolve({"in_channels": 1.5, "out_channels": 6, "kernel_size": 3})
    with pytest.raises(ParamError, match="groups"):
        spec = ops.get("conv2d")
        spec.shape(
            spec.resolve({"in_channels": 6, "out_channels": 4, "kernel_size": 3, "groups": 4}),
            [(6, 8, 8)],
        )
    with pytest.raises(ParamError, match="stride 1"):
        spec = ops.get("conv2d")
        spec.shape(
            spec.resolve(
                {
                    "in_channels": 6,
                    "out_channels": 4,
                    "kernel_size": 3,
                    "stride": 2,
                    "padding": "same",
                }
            ),
            [(6, 8, 8)],
        )
    with pytest.raises(CnnvizError, match="did you mean conv2d"):
        ops.get("conv2b")


def test_module_kind_lookup_respects_subclass_forward():
    from torchvision.models.convnext import LayerNorm2d

    assert ops.kind_for_module(LayerNorm2d(8)) == "layer_norm2d"
    assert ops.kind_for_module(nn.LayerNorm(8)) == "layer_norm"

    class MyConv(nn.Conv2d):
        pass

    class Odd(nn.Conv2d):
        def forward(self, x):
            return super().forward(x) * 2

    assert ops.kind_for_module(MyConv(1, 2, 3)) == "conv2d"
    assert ops.kind_for_module(Odd(1, 2, 3)) is None


# ------------------------------------------------------- property: rules == torch
_small = st.integers(min_value=1, max_value=4)


@settings(max_examples=60, deadline=None)
@given(
    size=st.integers(min_value=1, max_value=20),
    k=_small,
    s=_small,
    p=st.integers(min_value=0, max_value=3),
    d=st.integers(min_value=1, max_value=3),
    groups=st.sampled_from([1, 2]),
)
def test_conv2d_shape_rule_matches_torch(size, k, s, p, d, groups):
    spec = ops.get("conv2d")
    params = spec.resolve(
        {
            "in_channels": 2,
            "out_channels": 4,
            "kernel_size": k,
            "stride": s,
            "padding": p,
            "dilation": d,
            "groups": groups,
        }
    )
    module = spec.build(params).to("meta")
    try:
        expected = tuple(module(torch.empty(1, 2, size, size + 1, device="meta")).shape[1:])
    except RuntimeError:
        expected = None
    try:
        got = spec.shape(params, [(2, size, size + 1)])
    except ShapeError:
        got = None
    assert got == expected


@settings(max_examples=60, deadline=None)
@given(
    size=st.integers(min_value=1, max_value=20),
    k=_small,
    s=_small,
    p=st.integers(min_value=0, max_value=2),
    ceil=st.booleans(),
    kind=st.sampled_from(["max_pool2d", "avg_pool2d"]),
)
def test_pool_shape_rule_matches_torch(size, k, s, p, ceil, kind):
    spec = ops.get(kind)
    try:
        params = spec.resolve({"kernel_size": k, "stride": s, "padding": p, "ceil_mode": ceil})
        got = spec.shape(params, [(3, size, size)])
    except (ShapeError, ParamError):
        got = None
    try:
        module = (nn.MaxPool2d if kind == "max_pool2d" else nn.AvgPool2d)(
            k, stride=s, padding=p, ceil_mode=ceil
        )
        expected = tuple(module(torch.empty(1, 3, size, size)).shape[1:])
        if 0 in expected:
            expected = None
    except RuntimeError:
        expected = None
    assert got == expected


def test_resolve_checks_every_new_parameter_set():
    """Valid parameter sets are remembered; an edit (even inside a list) is checked again."""
    spec = ops.get("conv2d")
    p = {"in_channels": 3, "out_channels": 4, "kernel_size": [3, 3]}
    assert spec.resolve(p)["stride"] == 1
    assert spec.resolve(p)["padding"] == 0
    p["kernel_size"][1] = 0
    for _ in range(2):
        with pytest.raises(ParamError, match="kernel_size=\\[3, 0\\] is below the minimum 1"):
            spec.resolve(p)
    p["kernel_size"] = [3, 3]
    p["stride"] = True  # a bool is not an int, although True == 1
    with pytest.raises(ParamError, match="stride must be an integer"):
        spec.resolve(p)
