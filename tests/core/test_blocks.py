"""Ready blocks: each builds, its shapes agree with torch, its parameters with hand counts."""

from __future__ import annotations

import pytest
import torch

from cnnviz.core import blocks
from cnnviz.core.analysis import analyse
from cnnviz.core.build import build_module
from cnnviz.core.graph import ArchGraph


def _graph(name: str, shape: tuple[int, ...], params: dict | None = None) -> ArchGraph:
    g = ArchGraph(name)
    g.add_input("input", shape)
    inst = blocks.instantiate(name, shape, params or {}, "blk")
    for n in inst.nodes:
        n.inputs = ["input" if i == blocks.INPUT else i for i in n.inputs]
        g.add_node(n)
    g.outputs = [inst.output]
    return g


@pytest.mark.parametrize("name", list(blocks.BLOCKS))
def test_every_block_builds_and_matches_torch(name: str) -> None:
    g = _graph(name, (16, 8, 8))
    a = analyse(g)
    assert a.ok, a.errors
    model = build_module(g)
    out = model(torch.randn(2, 16, 8, 8))
    assert tuple(out.shape[1:]) == a[g.outputs[0]].output_shape
    assert a.params == sum(p.numel() for p in model.parameters())
    assert all(n.group == "blk" or n.group.startswith("blk.") for n in g if n.kind != "input")


@pytest.mark.parametrize("name", list(blocks.BLOCKS))
def test_every_block_adapts_to_other_input_channels(name: str) -> None:
    g = _graph(name, (24, 16, 16))
    a = analyse(g)
    assert a.ok, a.errors
    first = next(n for n in g if n.kind != "input")
    for key in ("in_channels", "num_features", "in_features"):
        if key in first.params:
            assert first.params[key] in (24, 24 * 16 * 16)


def test_palette_has_every_block_with_a_one_line_description() -> None:
    pal = blocks.palette()
    listed = [b.name for bs in pal.values() for b in bs]
    assert sorted(listed) == sorted(blocks.BLOCKS)
    wanted = {
        "conv_bn_relu", "residual_basic", "residual_bottleneck", "residual_preact", "inception",
        "dense_block", "transition", "squeeze_excitation", "depthwise_separable",
        "dilated_conv", "grouped_conv", "transposed_conv", "max_unpool", "head_gap", "head_mlp",
    }  # fmt: skip
    assert wanted <= set(blocks.BLOCKS)
    for b in blocks.BLOCKS.values():
        assert b.doc and "\n" not in b.doc and len(b.doc) <= 100 and b.title


def _conv(cin: int, cout: int, k: int, bias: bool = False, groups: int = 1) -> int:
    return cout * (cin // groups) * k * k + (cout if bias else 0)


def _bn(c: int) -> int:
    return 2 * c


def test_residual_block_with_projection_counts_like_resnet() -> None:
    g = _graph("residual_basic", (16, 8, 8), {"out_channels": 32, "stride": 2})
    a = analyse(g)
    hand = (
        _conv(16, 32, 3) + _bn(32) + _conv(32, 32, 3) + _bn(32)  # branch
        + _conv(16, 32, 1) + _bn(32)  # 1x1 stride-2 projection
    )  # fmt: skip
    assert a.params == hand
    assert a[g.outputs[0]].output_shape == (32, 4, 4)


def test_identity_shortcut_when_nothing_changes() -> None:
    g = _graph("residual_basic", (16, 8, 8))
    add = next(n for n in g if n.kind == "add")
    assert "input" in add.inputs
    assert not [n for n in g if "downsample" in n.name]


def test_se_depthwise_and_dense_counts() -> None:
    se = analyse(_graph("squeeze_excitation", (32, 4, 4), {"reduction": 4}))
    assert se.params == _conv(32, 8, 1, bias=True) + _conv(8, 32, 1, bias=True)
    dw = analyse(_graph("depthwise_separable", (16, 8, 8), {"out_channels": 32}))
    assert dw.params == _conv(16, 16, 3, groups=16) + _bn(16) + _conv(16, 32, 1) + _bn(32)
    dense = _graph("dense_block", (16, 8, 8), {"num_layers": 3, "growth_rate": 4})
    a = analyse(dense)
    assert a[dense.outputs[0]].output_shape == (16 + 3 * 4, 8, 8)
    hand = sum(
        _bn(c) + _conv(c, 16, 1) + _bn(16) + _conv(16, 4, 3) for c in (16, 20, 24)
    )  # bn_size 4 * k 4 = 16 bottleneck channels
    assert a.params == hand


def test_inception_concatenates_four_branches() -> None:
    g = _graph("inception", (8, 6, 6), {"ch1x1": 2, "ch3x3": 3, "ch5x5": 4, "pool_proj": 5})
    cat = g[g.outputs[0]]
    assert cat.kind == "cat" and len(cat.inputs) == 4
    assert analyse(g)[cat.name].output_shape == (2 + 3 + 4 + 5, 6, 6)


def test_upsampling_blocks_double_the_size() -> None:
    a = analyse(_graph("transposed_conv", (8, 5, 5)))
    assert a.nodes[[n for n in a.order][-1]].output_shape == (8, 10, 10)
    g = _graph("max_unpool", (8, 6, 6))
    assert analyse(g)[g.outputs[0]].output_shape == (8, 6, 6)


def test_bad_block_parameters_name_the_problem() -> None:
    with pytest.raises(blocks.BlockError, match="stride must be an integer"):
        blocks.instantiate("residual_basic", (16, 8, 8), {"stride": "2"})
    with pytest.raises(blocks.BlockError, match="below the minimum"):
        blocks.instantiate("dense_block", (16, 8, 8), {"growth_rate": 0})
    with pytest.raises(blocks.BlockError, match="no parameter 'strid'"):
        blocks.instantiate("conv_bn_relu", (16, 8, 8), {"strid": 2})
    with pytest.raises(blocks.BlockError, match="try groups=4"):
        blocks.instantiate("grouped_conv", (12, 8, 8), {"groups": 5, "out_channels": 16})
    with pytest.raises(blocks.BlockError, match="unknown block"):
        blocks.instantiate("resnet_block", (16, 8, 8))
    with pytest.raises(blocks.BlockError, match="unknown"):
        blocks.instantiate("conv_bn_relu", None)
    with pytest.raises(blocks.BlockError, match=r"\(C, H, W\)"):
        blocks.instantiate("conv_bn_relu", (10,))
