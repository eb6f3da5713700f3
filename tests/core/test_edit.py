"""EditSession: named edits with undo/redo, refusals instead of exceptions, live analysis."""

from __future__ import annotations

import functools
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from cnnviz.core import codegen, edit
from cnnviz.core.build import build_module
from cnnviz.core.edit import EditSession, graphs_equal
from cnnviz.core.graph import ArchGraph
from cnnviz.core.sources import load_source
from cnnviz.core.trace import from_module


@functools.cache
def _zoo(name: str) -> ArchGraph:
    return load_source(name, size="teaching")


def _graph(name: str) -> ArchGraph:
    return _zoo(name).copy()


def _small() -> ArchGraph:
    """input -> conv -> bn -> relu -> pool -> flatten -> fc, hand-made (no tracing)."""
    g = ArchGraph("small")
    g.add_input("input", (3, 8, 8))
    g.add(
        "conv", "conv2d", ["input"], in_channels=3, out_channels=4, kernel_size=3, padding=1
    ).module_path = "conv"
    g.add("bn", "batch_norm2d", ["conv"], num_features=4).module_path = "bn"
    g.add("relu", "relu", ["bn"]).module_path = "relu"
    g.add("pool", "max_pool2d", ["relu"], kernel_size=2).module_path = "pool"
    g.add("flatten", "flatten", ["pool"])
    g.add("fc", "linear", ["flatten"], in_features=64, out_features=5).module_path = "fc"
    g.outputs = ["fc"]
    return g


def _n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# ------------------------------------------------------------------------------ basics
def test_insert_names_the_edit_and_undo_restores() -> None:
    g = _small()
    original = g.copy()
    s = EditSession(g)
    r = s.insert("conv2d", "relu", "after", {"out_channels": 4})
    assert r.ok, r.message
    assert s.undo_name == "Insert conv2d after relu"
    new = r.created[0]
    assert s.graph[new].inputs == ["relu"] and s.graph["pool"].inputs == [new]
    assert s.graph[new].params["in_channels"] == 4  # adapted to the incoming channels
    assert s.analysis.ok and s.can_train and s.dirty
    s.undo()
    assert graphs_equal(s.graph, original) and not s.dirty
    assert s.redo_name == "Insert conv2d after relu"
    s.redo()
    assert new in s.graph and s.dirty


def test_insert_before_and_parallel() -> None:
    s = EditSession(_small())
    r = s.insert("relu", "pool", "before")
    assert r.ok and s.graph["pool"].inputs == list(r.created)
    r = s.insert("conv2d", "conv", "parallel", {"out_channels": 4}, merge="add")
    assert r.ok, r.message
    merge = [n for n in r.created if s.graph[n].kind == "add"][0]
    branch = [n for n in r.created if s.graph[n].kind == "conv2d"][0]
    assert s.graph[branch].inputs == ["input"]
    assert s.graph[merge].inputs == ["conv", branch]
    assert s.graph["bn"].inputs == [merge]
    assert s.analysis.ok


def test_out_channels_change_adapts_downstream_layers() -> None:
    s = EditSession(_small())
    assert s.set_params("conv", out_channels=8).ok
    assert s.graph["bn"].params["num_features"] == 8
    assert s.graph["fc"].params["in_features"] == 8 * 4 * 4
    assert s.analysis.ok
    # torch agrees with the analysis on the new output
    assert build_module(s.graph)(torch.zeros(2, 3, 8, 8)).shape == (2, 5)


def test_mismatch_is_applied_marked_and_blocks_training() -> None:
    s = EditSession(_small())
    r = s.set_params("conv", adapt=False, out_channels=8)
    assert r.ok and "bn" in r.message
    assert not s.analysis.ok
    bad = s.analysis["bn"]
    assert bad.error and "8" in bad.error and bad.fix == "num_features should be 8"
    assert s.analysis["conv"].output_shape == (8, 8, 8)  # the rest stays live
    assert not s.can_train and s.cannot_train_reason.startswith("bn:")
    s.undo()
    assert s.can_train and s.cannot_train_reason is None


@pytest.mark.parametrize(
    ("call", "words"),
    [
        (lambda s: s.set_params("conv", kernel_size="big"), "kernel_size"),
        (lambda s: s.set_params("conv", kernel_size=0), "minimum"),
        (lambda s: s.set_params("conv", kernal_size=3), "kernel_size"),  # suggests the name
        (lambda s: s.set_params("nope", kernel_size=3), "no node 'nope'"),
        (lambda s: s.insert("conv2d", "nope"), "no node"),
        (lambda s: s.insert("convv2d", "conv"), "conv2d"),
        (lambda s: s.insert("conv2d", "input", "before"), "no input"),
        (lambda s: s.connect("fc", "conv", 0), "cycle"),
        (lambda s: s.connect("relu", "conv"), "disconnect one first"),
        (lambda s: s.delete("input"), "input"),
        (lambda s: s.disconnect("fc", "conv"), "not an input"),
        (lambda s: s.replace("relu", "max_unpool2d"), "takes 2 input(s)"),
        (lambda s: s.set_num_classes(0), "positive"),
        (lambda s: s.set_input_shape([3, 0, 8]), "positive"),
        (lambda s: s.wrap_residual(["conv", "fc"]), "one input"),
        (lambda s: s.wrap_group(["conv"], "a.b"), "no dots"),
        (lambda s: s.insert("residual_basic", "flatten"), "(C, H, W)"),
        (lambda s: s.insert("grouped_conv", "relu", params={"groups": 3}), "groups"),
    ],
)
def test_invalid_edits_are_reported_and_change_nothing(call: Any, words: str) -> None:
    g = _small()
    s = EditSession(g)
    before = g.to_dict()
    seen: list[edit.ChangeEvent] = []
    s.add_listener(seen.append)
    r = call(s)
    assert not r.ok and not r
    assert words in r.message
    assert "internal error" not in r.message
    assert s.graph.to_dict() == before and not s.can_undo and not seen and not s.dirty


def test_listeners_dirty_flag_and_save(tmp_path: Any) -> None:
    s = EditSession(_small())
    events: list[edit.ChangeEvent] = []
    s.add_listener(events.append)
    s.set_params("relu", inplace=True)
    s.delete("relu")
    assert [e.action for e in events] == ["edit", "edit"]
    assert events[-1].name == "Delete relu" and "relu" in events[-1].changed
    assert s.graph["pool"].inputs == ["bn"]  # reconnected around the deleted node
    path = tmp_path / "a.json"
    s.save(path)
    assert not s.dirty and events[-1].action == "saved"
    assert graphs_equal(ArchGraph.load(path), s.graph)
    s.undo()
    assert s.dirty and events[-1].action == "undo"
    s.redo()
    assert not s.dirty
    s.remove_listener(events.append)
    n = len(events)
    s.undo()
    assert len(events) == n
    assert s.version == 5  # edit, edit, undo, redo, undo: every change counted


def test_replace_keeps_edges_and_fits_parameters() -> None:
    s = EditSession(_small())
    r = s.replace("pool", "avg_pool2d")
    assert r.ok and s.graph["pool"].kind == "avg_pool2d"
    assert s.graph["pool"].params["kernel_size"] == 2
    assert s.replace("relu", "gelu").ok
    assert s.undo_name == "Replace relu with gelu"
    assert s.analysis.ok


def test_number_of_classes_and_input_size() -> None:
    s = EditSession(_graph("lenet5"))
    assert s.set_num_classes(7).ok
    assert s.analysis.nodes[s.graph.outputs[0]].output_shape == (7,)
    r = s.set_input_shape([3, 32, 32])
    assert r.ok and s.undo_name == "Change input size to 3x32x32"
    assert s.analysis.ok, s.analysis.errors
    model = build_module(s.graph)
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 7)


def test_number_of_classes_of_a_segmentation_net() -> None:
    s = EditSession(_graph("fcn8s"))
    assert len(s.logits_nodes()) >= 3  # score_fr and the two skip scores (and upscores)
    assert s.set_num_classes(4).ok
    assert s.analysis.ok, s.analysis.errors[:2]
    assert s.analysis.nodes[s.graph.outputs[0]].output_shape[0] == 4


def test_wrap_group_moves_module_paths() -> None:
    s = EditSession(_small())
    r = s.wrap_group(["conv", "bn", "relu"], "stem")
    assert r.ok and s.undo_name == "Group 3 nodes as stem"
    assert s.graph["conv"].group == "stem" and s.graph["conv"].module_path == "stem.conv"
    keys = set(build_module(s.graph).state_dict())
    assert "stem.conv.weight" in keys and "conv.weight" not in keys


def test_insert_block_with_projection_adapts_to_channels() -> None:
    s = EditSession(_small())
    r = s.insert("residual_basic", "relu", params={"out_channels": 8, "stride": 2})
    assert r.ok, r.message
    assert s.analysis.ok, s.analysis.errors
    group = s.graph[r.created[0]].group
    kinds = [s.graph[n].kind for n in r.created]
    assert kinds.count("conv2d") == 3  # two 3x3 and the 1x1 projection
    assert s.graph[r.created[0]].params["in_channels"] == 4
    assert s.analysis.groups[group].output_shape == (8, 4, 4)
    assert s.graph["fc"].params["in_features"] == 8 * 2 * 2  # downstream adapted


# ---------------------------------------------------------------- plain-20 -> ResNet-20
def _resnet20_b_params() -> int:
    """ResNet-20 with 1x1 projection shortcuts (option B), counted by hand."""

    def conv(cin: int, cout: int, k: int) -> int:
        return cin * cout * k * k

    def bn(c: int) -> int:
        return 2 * c

    total = conv(3, 16, 3) + bn(16)
    cin = 16
    for c in (16, 32, 64):
        for j in range(3):
            total += conv(cin, c, 3) + bn(c) + conv(c, c, 3) + bn(c)
            if j == 0 and cin != c:
                total += conv(cin, c, 1) + bn(c)
            cin = c
    return total + 64 * 10 + 10


def test_plain20_becomes_resnet20_and_trains() -> None:
    """The "done when" of the editing issue, through the core API: nine wraps."""
    s = EditSession(_graph("plain20"))
    for stage in (1, 2, 3):
        for k in range(3):
            pair = s.graph.nodes_in_group(f"layer{stage}.{2 * k}") + s.graph.nodes_in_group(
                f"layer{stage}.{2 * k + 1}"
            )
            r = s.wrap_residual(pair)
            assert r.ok, r.message
    assert len(s.history) == 9 and s.can_train
    projections = [n for n in s.graph if "downsample" in n.name and n.kind == "conv2d"]
    assert len(projections) == 2  # where the width doubles and the map halves
    model = build_module(s.graph)
    assert _n_params(model) == _resnet20_b_params() == s.analysis.params
    from cnnviz.core.zoo.resnet import CifarResNet

    assert _n_params(CifarResNet(20, shortcut="B")) == _n_params(model)
    adds = [n for n in s.graph if n.kind == "add"]
    assert len(adds) == 9
    # the ReLU follows the sum, as in ResNet: relu(bn2(conv2(...)) + shortcut)
    for a in adds:
        assert s.graph[a.inputs[0]].kind == "batch_norm2d"
        assert [s.graph[n].kind for n in s.graph.successors(a.name)] == ["relu"]
    torch.manual_seed(0)
    x, y = torch.randn(16, 3, 32, 32), torch.randint(0, 10, (16,))
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    losses = []
    for _ in range(8):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] * 0.7
    # and it exports as source with the same weights layout
    ns: dict[str, Any] = {}
    exec(compile(codegen.to_source(s.graph), "<resnet20>", "exec"), ns)  # noqa: S102
    assert set(ns["build_model"]().state_dict()) == set(model.state_dict())


# ------------------------------------------------------------------- property based
_KINDS = ["conv2d", "relu", "batch_norm2d", "max_pool2d", "dropout", "identity", "add", "linear"]
_BLOCKS = ["conv_bn_relu", "residual_basic", "squeeze_excitation", "head_gap", "inception"]
_VALUES: list[Any] = [1, 2, 3, 0, -1, 7.5, "same", True, None, [3, 3], "x"]
_PARAMS = ["out_channels", "kernel_size", "stride", "padding", "p", "inplace", "bogus"]


def _apply(s: EditSession, op: tuple) -> edit.EditResult:
    names = [n for n in s.graph.nodes]
    pick = lambda i: names[i % len(names)]  # noqa: E731
    what = op[0]
    if what == "insert":
        _, kind_i, anchor_i, pos_i = op
        kinds = _KINDS + _BLOCKS
        return s.insert(kinds[kind_i % len(kinds)], pick(anchor_i), edit.POSITIONS[pos_i % 3])
    if what == "delete":
        return s.delete(pick(op[1]))
    if what == "replace":
        return s.replace(pick(op[1]), _KINDS[op[2] % len(_KINDS)])
    if what == "set":
        _, i, k, v = op
        return s.set_params(pick(i), **{_PARAMS[k % len(_PARAMS)]: _VALUES[v % len(_VALUES)]})
    if what == "connect":
        return s.connect(pick(op[1]), pick(op[2]), op[3] if op[3] >= 0 else None)
    if what == "disconnect":
        return s.disconnect(pick(op[1]), pick(op[2]))
    if what == "residual":
        start = op[1] % len(names)
        return s.wrap_residual(names[start : start + 1 + op[2] % 4])
    if what == "group":
        start = op[1] % len(names)
        return s.wrap_group(names[start : start + 1 + op[2] % 4])
    if what == "classes":
        return s.set_num_classes(op[1])
    if what == "input":
        return s.set_input_shape([op[1], 8 * op[2], 8 * op[2]])
    if what == "undo":
        return s.undo()
    return s.redo()


_idx = st.integers(0, 200)
_OPS = st.one_of(
    st.tuples(st.just("insert"), _idx, _idx, _idx),
    st.tuples(st.just("delete"), _idx),
    st.tuples(st.just("replace"), _idx, _idx),
    st.tuples(st.just("set"), _idx, _idx, _idx),
    st.tuples(st.just("connect"), _idx, _idx, st.integers(-1, 2)),
    st.tuples(st.just("disconnect"), _idx, _idx),
    st.tuples(st.just("residual"), _idx, _idx),
    st.tuples(st.just("group"), _idx, _idx),
    st.tuples(st.just("classes"), st.integers(-1, 12)),
    st.tuples(st.just("input"), st.integers(0, 3), st.integers(1, 4)),
    st.tuples(st.just("undo")),
    st.tuples(st.just("redo")),
)
_SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize("source", ["small", "lenet5", "resnet18"])
@_SETTINGS
@given(ops=st.lists(_OPS, min_size=1, max_size=10))
def test_random_edits_undo_to_the_original(source: str, ops: list[tuple]) -> None:
    g = _small() if source == "small" else _graph(source)
    original = g.to_dict()
    s = EditSession(g)
    for op in ops:
        before = s.graph.to_dict()
        r = _apply(s, op)  # never raises
        assert isinstance(r, edit.EditResult) and r.message
        assert "internal error" not in r.message, (op, r.message)
        if not r.ok:
            assert s.graph.to_dict() == before, op  # refused edits change nothing
        # save then load is the identity, whatever state the graph is in
        assert ArchGraph.from_json(s.graph.to_json()).to_dict() == s.graph.to_dict()
        # the analysis always describes the current graph
        assert set(s.analysis.nodes) == set(s.graph.nodes)
    end_state, applied = s.graph.to_dict(), len(s.history)
    while s.can_undo:
        assert s.undo().ok
    assert s.graph.to_dict() == original and not s.dirty
    for _ in range(applied):
        assert s.redo().ok
    assert s.graph.to_dict() == end_state


@_SETTINGS
@given(ops=st.lists(_OPS, min_size=1, max_size=6))
def test_random_valid_edits_export_and_run_like_the_built_model(ops: list[tuple]) -> None:
    s = EditSession(_small())
    for op in ops:
        _apply(s, op)
    if not s.can_train:
        return
    model = build_module(s.graph).eval()
    ns: dict[str, Any] = {}
    exec(compile(codegen.to_source(s.graph), "<edited>", "exec"), ns)  # noqa: S102
    gen = ns["build_model"]().eval()
    assert {k: v.shape for k, v in gen.state_dict().items()} == {
        k: v.shape for k, v in model.state_dict().items()
    }
    gen.load_state_dict(model.state_dict())
    x = torch.randn(2, *s.graph.input_shape)
    with torch.no_grad():
        torch.testing.assert_close(gen(x), model(x))


def test_graph_from_a_user_module_is_editable() -> None:
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Conv2d(1, 4, 3, padding=1)
            self.b = nn.Conv2d(4, 4, 3, padding=1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.relu(self.b(self.a(x))) + self.a(x)

    s = EditSession(from_module(Net(), (1, 6, 6)))
    assert s.wrap_residual(["b"]).ok
    assert s.can_train
