"""analyse(): figures checked by hand and against torch; invalid graphs never raise."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from cnnviz.core.analysis import analyse, format_count
from cnnviz.core.graph import ArchGraph, Node
from cnnviz.core.ops import ShapeError
from cnnviz.core.trace import from_module
from tests.core.test_graph import lenet


def test_lenet_by_hand():
    a = analyse(lenet())
    assert a.ok, a.errors
    shapes = {n: r.output_shape for n, r in a.nodes.items()}
    assert shapes["features.c1"] == (6, 28, 28)
    assert shapes["features.s2"] == (6, 14, 14)
    assert shapes["features.c3"] == (16, 10, 10)
    assert shapes["features.s4"] == (16, 5, 5)
    assert shapes["flatten"] == (400,)
    assert shapes["classifier.out"] == (10,)
    # 156 + 2,416 + 48,120 + 10,164 + 850 (LeCun 1998 counts 60k; this is the modern LeNet-5)
    assert a.params == 156 + 2416 + 48120 + 10164 + 850 == 61706
    # C1 1*25*6*28*28 + C3 6*25*16*10*10 + F5 400*120 + F6 120*84 + out 84*10
    assert a.macs == 117600 + 240000 + 48000 + 10080 + 840
    r = a["features.c1"]
    assert r.memory_bytes == 6 * 28 * 28 * 4
    assert r.input_shapes == ((1, 32, 32),)
    assert "floor((32 - 5 + 2*0)/1) + 1 = 28" in "\n".join(r.formulas["output_shape"])
    assert "6*(1*5*5 + 1) = 156" in r.formulas["params"][-1]
    assert r.formulas["macs"] == ("MACs = (1/1)*5*5*6*28*28 = 117,600",)
    assert a["features.relu1"].ops == 6 * 28 * 28 and a["features.relu1"].macs == 0
    assert a["features.s2"].rf.size == (6, 6) and a["features.s2"].rf.jump == (2, 2)
    assert a["classifier.f5"].rf.global_


def test_results_are_frozen():
    a = analyse(lenet())
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.params = 1
    with pytest.raises(TypeError):
        a.nodes["x"] = None


def test_group_totals():
    a = analyse(lenet())
    feats = a.groups["features"]
    assert feats.params == 156 + 2416
    assert feats.macs == 117600 + 240000
    assert feats.output_node == "features.s4"
    assert feats.output_shape == (16, 5, 5)
    assert feats.rf.size == (16, 16)  # 5 -> 6 -> 14 -> 16 (see test_receptive_field)
    assert a.groups["classifier"].params == 48120 + 10164 + 850


def test_agrees_with_torch_on_a_traced_model():
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1, bias=False),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, stride=2, groups=2),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 5),
    )
    model[1].requires_grad_(False)
    g = from_module(model, (3, 17, 17))
    a = analyse(g)
    assert a.params + a.frozen_params == sum(p.numel() for p in model.parameters())
    assert a.frozen_params == 16
    assert a.buffers == sum(b.numel() for b in model.buffers())
    assert a["3"].output_shape == (8, 8, 8)
    assert a.macs == 3 * 9 * 8 * 17 * 17 + (8 // 2) * 9 * 8 * 8 * 8 + 8 * 5


def _broken() -> ArchGraph:
    g = ArchGraph("broken")
    g.add_input("input", (6, 28, 28))
    g.add("conv", "conv2d", ["input"], in_channels=6, out_channels=6, kernel_size=5)
    g.add("bn", "batch_norm2d", ["conv"], num_features=6)
    g.add("add", "add", ["bn", "input"])
    g.add("after", "relu", ["add"])
    g.add("side", "conv2d", ["input"], in_channels=6, out_channels=4, kernel_size=1)
    g.add("bad_kind", "conv2b", ["input"])
    g.add("wrong_fc", "linear", ["input"], in_features=10, out_features=2)
    return g


def test_invalid_graph_reports_errors_and_keeps_going():
    a = analyse(_broken())
    add = a["add"]
    assert add.output_shape is None
    assert "spatial sizes differ: 24x24 vs 28x28" in add.error
    assert add.fix == "padding=2 on conv keeps 28x28"
    assert a["after"].output_shape is None and a["after"].error is None
    assert a["side"].output_shape == (4, 28, 28) and a["side"].error is None
    assert a["bad_kind"].error == "unknown kind 'conv2b'"
    assert "did you mean conv2d" in a["bad_kind"].fix
    assert "in_features should be 28" in a["wrong_fc"].fix
    assert {n for n, _ in a.errors} == {"add", "bad_kind", "wrong_fc"}
    assert not a.ok
    with pytest.raises(ShapeError) as e:
        a.check()
    assert str(e.value).startswith("add: add of (6, 24, 24) and (6, 28, 28)")
    assert str(e.value).endswith("fix: padding=2 on conv keeps 28x28")
    analyse(lenet()).check()


def test_merge_channel_mismatch_suggests_projection():
    g = ArchGraph()
    g.add_input("input", (16, 14, 14))
    g.add("conv", "conv2d", ["input"], in_channels=16, out_channels=32, kernel_size=3, padding=1)
    g.add("add", "add", ["conv", "input"])
    a = analyse(g)
    assert "channels differ: 32 vs 16" in a["add"].error or "16 vs 32" in a["add"].error
    assert "projection" in a["add"].fix


def test_missing_input_and_cycle_do_not_raise():
    g = ArchGraph()
    g.add_input("input", (3, 8, 8))
    g.add("a", "relu", ["ghost"])
    g.add("b", "relu", ["c"])
    g.add("c", "relu", ["b"])
    g.add("d", "conv2d", ["input"], in_channels=3, out_channels=2, kernel_size=3)
    a = analyse(g)
    assert "does not exist" in a["a"].error
    assert "cycle" in a["b"].error and "cycle" in a["c"].error
    assert a["d"].output_shape == (2, 6, 6)


def test_bad_params_are_reported():
    g = ArchGraph()
    g.add_input("input", (3, 8, 8))
    g.add("c", "conv2d", ["input"], in_channels=3, out_channels=2)
    assert "kernel_size" in analyse(g)["c"].error


def test_opaque_node_uses_measured_figures():
    g = ArchGraph()
    g.add_input("input", (3, 8, 8))
    g.add_node(
        Node(
            "lstm",
            "opaque",
            {"type": "Foo", "num_params": 120, "num_trainable": 100},
            ["input"],
            measured_shape=(5, 4),
        )
    )
    g.add("fc", "linear", ["lstm"], in_features=4, out_features=2)
    a = analyse(g)
    assert a["lstm"].output_shape == (5, 4)
    assert a["lstm"].params == 100 and a["lstm"].frozen_params == 20
    assert a["lstm"].warnings
    assert a["fc"].output_shape == (5, 2)


def test_format_count():
    assert format_count(4_089_184_256, "MACs") == "4.09 GMACs"
    assert format_count(117_600) == "117.60 k"
    assert format_count(12) == "12"
