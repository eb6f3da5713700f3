"""Receptive fields: hand derivations, published values and autograd.

Convention (Araujo, Norris & Sim, "Computing Receptive Fields of Convolutional Neural
Networks", Distill 2019): per layer with kernel k, stride s, padding p, dilation d,
k' = d(k-1)+1, size += (k'-1)*jump, padding += p*jump, jump *= s; unit i is centred on input
pixel -padding + i*jump + (size-1)/2.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnviz.core.analysis import analyse
from cnnviz.core.graph import ArchGraph
from cnnviz.core.trace import from_module, from_torchvision


def _chain(*layers: tuple[str, dict], shape=(1, 64, 64)) -> ArchGraph:
    g = ArchGraph()
    g.add_input("input", shape)
    prev = "input"
    for k, (kind, params) in enumerate(layers):
        g.add(f"l{k}", kind, [prev], **params)
        prev = f"l{k}"
    return g


def conv(k, s=1, p=0, d=1, c=1):
    return (
        "conv2d",
        {
            "in_channels": c,
            "out_channels": c,
            "kernel_size": k,
            "stride": s,
            "padding": p,
            "dilation": d,
        },
    )


def _last_rf(g):
    a = analyse(g)
    assert a.ok, a.errors
    return a[a.order[-1]].rf


def test_two_3x3_convs_see_5():
    # size: 1 + 2*1 = 3, then 3 + 2*1 = 5; jump stays 1
    rf = _last_rf(_chain(conv(3), conv(3)))
    assert rf.size == (5, 5) and rf.jump == (1, 1) and rf.padding == (0, 0)


def test_strided_then_3x3_sees_7_with_jump_2():
    # conv3x3 s2: size 3, jump 2; conv3x3: 3 + 2*2 = 7, jump 2
    rf = _last_rf(_chain(conv(3, s=2), conv(3)))
    assert rf.size == (7, 7) and rf.jump == (2, 2)


def test_padding_and_dilation():
    # conv3x3 p1: size 3, padding 1; dilated 3x3 (d=2, k'=5) p2: size 3 + 4*1 = 7,
    # padding 1 + 2*1 = 3; centre of unit 0 = -3 + (7-1)/2 = 0: 'same' layers stay centred.
    rf = _last_rf(_chain(conv(3, p=1), conv(3, p=2, d=2)))
    assert rf.size == (7, 7) and rf.padding == (3, 3)


def test_transposed_conv_divides_the_jump():
    # conv 2x2 s2 (size 2, jump 2), then transposed 2x2 s2: jump 2/2 = 1,
    # size 2 + (2-1)/2*2 = 3. A lone transposed conv has jump 1/2: fractional jumps are fine.
    g = _chain(
        conv(2, s=2),
        ("conv_transpose2d", {"in_channels": 1, "out_channels": 1, "kernel_size": 2, "stride": 2}),
    )
    rf = _last_rf(g)
    assert rf.jump == (1, 1) and rf.size == (3, 3)
    rf = _last_rf(
        _chain(
            (
                "conv_transpose2d",
                {"in_channels": 1, "out_channels": 1, "kernel_size": 2, "stride": 2},
            )
        )
    )
    assert rf.jump == (0.5, 0.5)


def test_global_operations():
    a = analyse(
        _chain(
            conv(3),
            ("adaptive_avg_pool2d", {"output_size": 1}),
            ("flatten", {}),
            ("linear", {"in_features": 1, "out_features": 3}),
        )
    )
    assert a["l1"].rf.global_ and a["l1"].rf.size is None
    assert a["l3"].rf.global_
    # flatten alone does not mix positions; a linear layer on the flattened map does
    a = analyse(
        _chain(conv(3), ("flatten", {}), ("linear", {"in_features": 62 * 62, "out_features": 2}))
    )
    assert not a["l1"].rf.global_ and a["l1"].rf.size == (3, 3)
    assert a["l2"].rf.global_
    # softmax over channels is local, over a spatial axis global
    a = analyse(_chain(conv(3), ("softmax", {"dim": 1}), ("softmax", {"dim": 2})))
    assert not a["l1"].rf.global_ and a["l2"].rf.global_
    # an RF as large as the input is still not global: the op does not mix all positions
    a = analyse(_chain(conv(5), shape=(1, 5, 5)))
    assert a["l0"].rf.size == (5, 5) and not a["l0"].rf.global_


def test_channels_last_linear_is_pointwise():
    a = analyse(
        _chain(
            conv(3),
            ("permute", {"dims": [0, 2, 3, 1]}),
            ("linear", {"in_features": 1, "out_features": 4}),
            ("permute", {"dims": [0, 3, 1, 2]}),
            conv(3, c=4),
        )
    )
    assert not a["l2"].rf.global_
    assert a["l4"].rf.size == (5, 5)


def test_squeeze_excitation_scale_is_global_but_keeps_the_local_window():
    g = ArchGraph()
    g.add_input("input", (4, 16, 16))
    g.add("c", "conv2d", ["input"], in_channels=4, out_channels=4, kernel_size=3, padding=1)
    g.add("pool", "adaptive_avg_pool2d", ["c"], output_size=1)
    g.add("gate", "sigmoid", ["pool"])
    g.add("scale", "mul", ["c", "gate"])
    rf = analyse(g)["scale"].rf
    assert rf.global_ and rf.size == (3, 3)


def test_misaligned_branches_warn():
    g = ArchGraph()
    g.add_input("input", (1, 16, 16))
    g.add("a", "conv2d", ["input"], in_channels=1, out_channels=1, kernel_size=3)  # centre 1
    g.add("crop", "zero_pad2d", ["input"], padding=[-2, 0, -2, 0])  # 14x14, unit 0 at pixel 2
    g.add("b", "conv2d", ["crop"], in_channels=1, out_channels=1, kernel_size=1)
    g.add("sum", "add", ["a", "b"])
    a = analyse(g)
    assert a["sum"].output_shape == (1, 14, 14)
    assert any("misaligned" in w for w in a["sum"].warnings)
    # aligned 'same' branches do not warn
    g = ArchGraph()
    g.add_input("input", (1, 16, 16))
    g.add("a", "conv2d", ["input"], in_channels=1, out_channels=1, kernel_size=3, padding=1)
    g.add("b", "conv2d", ["input"], in_channels=1, out_channels=1, kernel_size=5, padding=2)
    g.add("sum", "add", ["a", "b"])
    r = analyse(g)["sum"]
    assert not r.warnings and r.rf.size == (5, 5) and r.rf.padding == (2, 2)


# ----------------------------------------------------------- published networks
def _rf(graph, name):
    a = analyse(graph)
    assert a.ok, a.errors
    return a[name].rf


def test_vgg16_matches_distill():
    """Distill 2019, table of receptive fields: VGG-16 r=212, effective stride 32, padding 90.

    Derivation: 13 3x3 convs (pad 1) and 5 2x2 pools (stride 2). conv1_1..conv5_3:
    block b adds 2 per conv at jump 2^(b-1): 1 + 2*(2*1 + 2*2) + 3*2*(4 + 8 + 16) + pools
    (1*1 + 1*2 + 1*4 + 1*8 before conv5) = 196 at conv5_3; pool5 adds 1*16 -> 212.
    """
    g = from_torchvision("vgg16", (3, 224, 224))
    conv5_3 = _rf(g, "features.28")
    assert conv5_3.size == (196, 196) and conv5_3.jump == (16, 16)
    pool5 = _rf(g, "features.30")
    assert pool5.size == (212, 212) and pool5.jump == (32, 32) and pool5.padding == (90, 90)


def test_alexnet_features():
    """torchvision AlexNet: conv 11 s4 (11, jump 4) -> pool 3 s2 (19, 8) -> conv 5 (51) ->
    pool 3 s2 (67, 16) -> 3x conv 3 (99, 131, 163) -> pool 3 s2 (195, 32). Distill 2019 lists
    195 and stride 32 for alexnet_v2, whose layer sizes and strides are the same."""
    g = from_torchvision("alexnet", (3, 224, 224))
    expect = {
        "features.0": (11, 4),
        "features.2": (19, 8),
        "features.3": (51, 8),
        "features.5": (67, 16),
        "features.6": (99, 16),
        "features.8": (131, 16),
        "features.10": (163, 16),
        "features.12": (195, 32),
    }
    for name, (size, jump) in expect.items():
        rf = _rf(g, name)
        assert (rf.size[0], rf.jump[0]) == (size, jump), name


def test_torchvision_resnet50_differs_from_distill_v1():
    """Distill's resnet_v1_50 (TF-slim: stride 2 on the last unit of each block) has r=483.
    torchvision's ResNet-50 is "v1.5": stride 2 on the 3x3 of the first unit of a stage.

    Derivation (only 3x3 convs and the stem grow the field): conv1 7 s2 -> 7 (jump 2);
    maxpool 3 s2 -> 11 (4); layer1 3 units * 2*4 -> 35; layer2 unit 0 +2*4 -> 43 (jump 8),
    3 units * 16 -> 91; layer3 unit 0 +16 -> 107 (16), 5 * 32 -> 267; layer4 unit 0 +32 -> 299
    (32), 2 * 64 -> 427. Padding: 3 + 1*2 + 3*4 + 4 + 3*8 + 8 + 5*16 + 16 + 2*32 = 213, so
    unit 0 is centred on pixel -213 + (427-1)/2 = 0.
    """
    a = analyse(from_torchvision("resnet50", (3, 224, 224)))
    layer4 = a.groups["layer4"].rf
    assert layer4.size == (427, 427)
    assert layer4.jump == (32, 32) and layer4.padding == (213, 213)
    assert a.groups["layer1"].rf.size == (35, 35) and a.groups["layer3"].rf.size == (267, 267)
    # the projection shortcuts (1x1, stride 2) are centred like the 3x3 path: no warnings
    assert not [w for _, w in a.warnings if "misaligned" in w]


# --------------------------------------------------------------------- autograd
def _positive(model: nn.Module) -> nn.Module:
    with torch.no_grad():
        for p in model.parameters():
            p.uniform_(0.1, 1.0)
    return model.double()


class Branching(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, 2, 3, stride=2, padding=1)
        self.a = nn.Conv2d(2, 2, 3, padding=1)
        self.b = nn.Conv2d(2, 2, 5, padding=2)
        self.head = nn.Conv2d(2, 1, 3, dilation=2)
        self.pool = nn.AvgPool2d(2)

    def forward(self, x):
        x = self.stem(x)
        return self.pool(self.head(self.a(x) + self.b(x)))


@pytest.mark.parametrize(
    "model",
    [
        nn.Sequential(
            nn.Conv2d(1, 2, 3),
            nn.Conv2d(2, 2, 3, stride=2),
            nn.AvgPool2d(3, 2),
            nn.Conv2d(2, 1, 3, dilation=2),
        ),
        Branching(),
    ],
    ids=["chain", "branching"],
)
def test_rf_box_equals_nonzero_gradient(model):
    model = _positive(model)
    n = 48
    g = from_module(model, (1, n, n))
    a = analyse(g)
    rf = a[g.outputs[0]].rf
    x = torch.rand(1, 1, n, n, dtype=torch.float64) + 0.5
    x.requires_grad_(True)
    y = model(x)
    h, w = y.shape[-2:]
    checked = 0
    for i in range(h):
        for j in range(w):
            top = -rf.padding[0] + i * rf.jump[0]
            left = -rf.padding[1] + j * rf.jump[1]
            if top < 0 or left < 0 or top + rf.size[0] > n or left + rf.size[1] > n:
                continue  # the box runs into the zero padding: not comparable
            (grad,) = torch.autograd.grad(y[0, 0, i, j], x, retain_graph=True)
            rows = torch.nonzero(grad[0, 0].abs().sum(1)).flatten()
            cols = torch.nonzero(grad[0, 0].abs().sum(0)).flatten()
            assert (int(rows.min()), int(rows.max())) == (top, top + rf.size[0] - 1)
            assert (int(cols.min()), int(cols.max())) == (left, left + rf.size[1] - 1)
            checked += 1
    assert checked >= 4
