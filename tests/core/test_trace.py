"""Importing nn.Modules: shapes against torch, build-back, files, fallbacks and errors."""

from __future__ import annotations

import textwrap

import pytest
import torch
import torch.fx as fx
import torchvision
from torch import nn
from torch.fx.passes.shape_prop import ShapeProp

from cnnviz.core import trace
from cnnviz.core.analysis import analyse
from cnnviz.core.build import build_module
from cnnviz.core.graph import ArchGraph
from cnnviz.core.ops import MultiShape
from cnnviz.core.trace import SourceError, from_file, from_module, from_torchvision

SHAPE_MODELS = {
    "resnet18": 224,
    "densenet121": 224,
    "googlenet": 224,
    "inception_v3": 299,
    "mobilenet_v3_small": 224,
    "efficientnet_b0": 224,
    "shufflenet_v2_x0_5": 224,
    "convnext_tiny": 224,
    "squeezenet1_0": 224,
    "regnet_x_400mf": 224,
}


def _torch_shapes(model: nn.Module, size: int) -> dict[str, object]:
    """Output shape of every node, measured by torch's own ShapeProp, by our node names."""
    fx_graph = trace._Tracer().trace(model)
    gm = fx.GraphModule(model, fx_graph)
    ShapeProp(gm).propagate(torch.empty(1, 3, size, size, device="meta"))
    shapes: dict[str, object] = {}
    used: set[str] = set()

    def unique(base: str) -> str:
        cand, k = base, 1
        while cand in used:
            cand = f"{base}_{k}"
            k += 1
        used.add(cand)
        return cand

    names = {n: unique(n.target) for n in gm.graph.nodes if n.op == "call_module"}
    for n in gm.graph.nodes:
        meta = n.meta.get("tensor_meta")
        if n.op in ("placeholder", "output", "get_attr") or meta is None:
            continue
        name = names.get(n) or unique(n.name)
        if not hasattr(meta, "shape"):
            shapes[name] = MultiShape(tuple(tuple(m.shape[1:]) for m in meta))
        else:
            shapes[name] = tuple(meta.shape[1:])
    return shapes


@pytest.mark.parametrize("name", list(SHAPE_MODELS))
def test_every_shape_matches_torch(name):
    size = SHAPE_MODELS[name]
    model = trace.build_torchvision(name).eval()
    graph = from_module(model, (3, size, size), name=name)
    a = analyse(graph)
    assert a.ok, a.errors[:3]
    measured = _torch_shapes(model, size)
    compared = 0
    for node in graph:
        if node.name in measured:
            assert a[node.name].output_shape == measured[node.name], node.name
            compared += 1
    tensor_nodes = sum(1 for n in graph if n.kind not in ("input", "parameter"))
    assert compared >= 0.95 * tensor_nodes
    assert not [n.name for n in graph if n.kind == "opaque"], "torchvision CNNs need no opaque"


@pytest.mark.parametrize(
    "name",
    [
        "resnet18",
        "squeezenet1_0",
        "mobilenet_v3_small",
        "shufflenet_v2_x0_5",
        # layer_scale parameters, channels-last permutes, LayerNorm2d, stochastic depth
        pytest.param("convnext_tiny", marks=pytest.mark.slow),
    ],
)
def test_build_back_loads_weights_and_matches(name):
    torch.manual_seed(0)
    model = torchvision.models.get_model(name, weights=None).eval()
    graph = from_module(model, (3, 64, 64), name=name)
    built = build_module(graph).eval()
    original = model.state_dict()
    rebuilt = built.state_dict()
    assert list(rebuilt) == list(original) or set(rebuilt) == set(original)
    assert {k: v.shape for k, v in rebuilt.items()} == {k: v.shape for k, v in original.items()}
    built.load_state_dict(original, strict=True)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(built(x), model(x), atol=1e-5)
    assert sum(p.numel() for p in built.parameters()) == sum(p.numel() for p in model.parameters())


def test_train_mode_reaches_function_nodes():
    graph = ArchGraph()
    graph.add_input("input", (8,))
    graph.add("drop", "dropout", ["input"], p=0.5)
    built = build_module(graph)
    built.eval()
    x = torch.ones(4, 8)
    assert torch.equal(built(x), x)
    built.train()
    assert not torch.equal(built(x), x)


def test_densenet_functional_relu_is_a_node():
    graph = from_torchvision("densenet121", (3, 64, 64))
    functional = [n for n in graph if n.kind == "relu" and n.module_path is None]
    assert functional, "DenseNet's F.relu(features) must appear as a relu node"
    assert graph[graph.outputs[0]].kind == "linear"
    # its group is the module whose forward called it: the top level here
    assert functional[-1].group == ""


def test_groups_follow_the_module_hierarchy():
    graph = from_torchvision("resnet18", (3, 64, 64))
    assert graph["layer2.0.conv1"].group == "layer2.0"
    assert graph["layer2.0.downsample.0"].group == "layer2.0.downsample"
    adds = [n for n in graph if n.kind == "add"]
    assert adds and adds[0].group == "layer1.0"
    assert {"layer1", "layer1.0", "layer2.0.downsample"} <= set(graph.groups())


def test_json_round_trip_of_a_traced_graph():
    graph = from_torchvision("shufflenet_v2_x0_5", (3, 64, 64))
    again = ArchGraph.from_json(graph.to_json())
    assert again == graph
    assert analyse(again).macs == analyse(graph).macs


class WithParameter(nn.Module):
    """A parameter used directly (like ConvNeXt's layer_scale) and a module called twice."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.scale = nn.Parameter(torch.full((4, 1, 1), 0.5))
        self.act = nn.ReLU()

    def forward(self, x):
        y = self.act(self.conv(x)) * self.scale
        return self.act(y - 0.1).flatten(1)


def test_parameters_shared_modules_and_opaque_functions_build_back():
    torch.manual_seed(0)
    model = WithParameter().eval()
    graph = from_module(model, (3, 8, 8))
    assert graph["scale"].kind == "parameter" and graph["scale"].params["fill"] == 0.5
    assert graph["act"].module_path == graph["act_1"].module_path == "act"
    assert [n.kind for n in graph if n.kind == "opaque"] == ["opaque"]  # the subtraction
    a = analyse(graph)
    assert a.total_params == 3 * 4 * 9 + 4 + 4
    built = build_module(graph).eval()
    built.load_state_dict(model.state_dict())
    x = torch.randn(2, 3, 8, 8)
    assert torch.allclose(built(x), model(x))


def test_user_file(tmp_path):
    path = tmp_path / "mynet.py"
    path.write_text(
        textwrap.dedent(
            """
            import torch
            from torch import nn

            class MyNet(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.conv = nn.Conv2d(1, 4, 3)
                    self.fc = nn.Linear(4 * 26 * 26, 10)

                def forward(self, x):
                    return self.fc(torch.flatten(torch.relu(self.conv(x)), 1))

            def make():
                return MyNet()
            """
        )
    )
    for target in ("MyNet", "make"):
        graph = from_file(f"{path}:{target}", (1, 28, 28))
        a = analyse(graph)
        assert a.ok and a[graph.outputs[0]].output_shape == (10,)
        assert [n.kind for n in graph] == ["input", "conv2d", "relu", "flatten", "linear"]


def test_file_errors(tmp_path):
    with pytest.raises(SourceError, match="no such file"):
        from_file(f"{tmp_path}/nope.py:Net", (3, 8, 8))
    good = tmp_path / "good.py"
    good.write_text("from torch import nn\nclass Net(nn.Module):\n    pass\n")
    with pytest.raises(SourceError, match="defines no 'Nett'; did you mean Net"):
        from_file(f"{good}:Nett", (3, 8, 8))
    bad = tmp_path / "bad.py"
    bad.write_text("def f(:\n    pass\n")
    with pytest.raises(SourceError, match=r"bad.py, line 1: syntax error"):
        from_file(f"{bad}:f", (3, 8, 8))
    boom = tmp_path / "boom.py"
    boom.write_text(
        "from torch import nn\n\nclass Net(nn.Module):\n    def __init__(self):\n"
        "        super().__init__()\n        raise ValueError('broken on purpose')\n"
    )
    with pytest.raises(SourceError) as e:
        from_file(f"{boom}:Net", (3, 8, 8))
    assert "broken on purpose" in str(e.value) and "line 6" in str(e.value)
    with pytest.raises(SourceError, match="expected path/file.py:NAME"):
        from_file("justaname", (3, 8, 8))


class DataDependent(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        x = self.conv(x)
        if x.sum() > 0:
            x = torch.relu(x)
        return self.fc(torch.flatten(self.pool(x), 1))


def test_untraceable_model_falls_back_to_hooks():
    graph = from_module(DataDependent(), (3, 16, 16))
    assert graph.notes and "torch.fx could not trace DataDependent" in graph.notes[0]
    assert "if x.sum() > 0" in graph.notes[0]
    assert [n.name for n in graph] == ["input", "conv", "pool", "fc.input_reshape", "fc"]
    a = analyse(graph)
    assert a.ok, a.errors
    assert a["fc"].output_shape == (2,)
    assert a.total_params == sum(p.numel() for p in DataDependent().parameters())


def test_unknown_torchvision_name():
    with pytest.raises(SourceError, match="did you mean resnet50"):
        from_torchvision("resnet5O")


def test_model_that_fails_on_the_input_shape(capfd):
    """The registry's rule names the node, what it expected and got, and the fix."""
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(10, 2))
    with pytest.raises(trace.TraceError) as info:
        from_module(model, (1, 8, 8))
    assert str(info.value) == (
        "Sequential: the input shape (1, 8, 8) does not fit the model: 0: the input has 1 "
        "channels but in_channels=3 (expected 3, got 1); fix: in_channels should be 1"
    )
    with pytest.raises(trace.TraceError) as info:
        from_module(model, (3, 8, 8))
    # 4 channels of 6x6 after the 3x3 convolution: 144 features
    assert str(info.value).endswith(
        "2: linear expects 10 input features but gets 144 (expected 10, got 144); "
        "fix: in_features should be 144"
    )
    assert "Traceback" not in capfd.readouterr().err


class _Opaque(nn.Module):
    def forward(self, x):
        return torch.einsum("bchw,cd->bdhw", x, torch.ones(5, 2))


def test_model_that_fails_in_an_opaque_call_shows_torchs_message(capfd):
    with pytest.raises(trace.TraceError, match="running the model on an input of shape") as info:
        from_module(nn.Sequential(nn.Conv2d(3, 4, 3), _Opaque()), (3, 8, 8))
    assert "RuntimeError" in str(info.value)
    assert "Traceback" not in capfd.readouterr().err


# ------------------------------------------------------------------------- the zoo
def _zoo_names() -> list[str]:
    try:
        from cnnviz.core import zoo
    except ImportError:
        return []
    return list(zoo.names()) if hasattr(zoo, "names") else []


_DEEP = {
    "resnet101",
    "resnet152",
    "densenet169",
    "densenet201",
    "wide_resnet101_2",
    "resnext101_32x8d",
}


@pytest.mark.parametrize(
    "name",
    [pytest.param(n, marks=pytest.mark.slow) if n in _DEEP else n for n in _zoo_names()],
)
def test_zoo_entry_round_trip(name):
    """Teaching size: trace -> analyse -> shapes equal torch's real forward -> build back with
    the original weights -> same parameters and output -> JSON round trip."""
    from cnnviz.core import zoo

    torch.manual_seed(0)
    model, shape = zoo.build(name, size="teaching")
    model.eval()
    graph = from_module(model, shape, name=name)
    a = analyse(graph)
    assert a.ok, a.errors[:3]

    gm = fx.GraphModule(model, trace._Tracer().trace(model))
    x = torch.randn(1, *shape)
    with torch.no_grad():
        expected = ShapeProp(gm).propagate(x)
    measured = {}
    used: set[str] = set()
    for n in gm.graph.nodes:
        meta = n.meta.get("tensor_meta")
        if n.op in ("placeholder", "output", "get_attr") or meta is None:
            continue
        base = n.target if n.op == "call_module" else n.name
        name_, k = base, 1
        while name_ in used:
            name_, k = f"{base}_{k}", k + 1
        used.add(name_)
        if hasattr(meta, "shape"):
            measured[name_] = tuple(meta.shape[1:])
    for node in graph:
        if node.name in measured and node.kind != "input":
            assert a[node.name].output_shape == measured[node.name], node.name

    built = build_module(graph).eval()
    result = built.load_state_dict(model.state_dict(), strict=False)
    assert not result.missing_keys
    # keys left over belong to modules that only run in training (auxiliary heads)
    unused = {k.split(".")[0] for k in result.unexpected_keys}
    for top in unused:
        assert any(top in note for note in graph.notes), top
    trained = sum(p.numel() for k, p in model.named_parameters() if k.split(".")[0] not in unused)
    assert sum(p.numel() for p in built.parameters()) == trained == a.total_params
    with torch.no_grad():
        assert torch.allclose(built(x), expected, atol=1e-5, rtol=1e-4)
    assert ArchGraph.from_json(graph.to_json()) == graph
