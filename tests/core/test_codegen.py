"""Exported PyTorch source: readable, and it round-trips to the source model's weights."""

from __future__ import annotations

import functools
import importlib.util
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cnnviz.core import codegen, zoo
from cnnviz.core.build import build_module
from cnnviz.core.sources import load_source
from cnnviz.core.trace import from_module

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _exec_as_module(source: str, tmp: Path, name: str) -> Any:
    """Run the source as a real module file in a fresh namespace."""
    path = tmp / f"{name}.py"
    path.write_text(source, encoding="utf-8")
    spec = importlib.util.spec_from_file_location(f"cnnviz_gen_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.modules.pop(spec.name, None)
    return module


def _shapes(model: nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


@functools.cache
def _source(name: str) -> tuple[Any, str]:
    graph = load_source(name, size="teaching")
    torch.manual_seed(0)
    model, _ = zoo.build(name)
    return graph, codegen.to_source(graph, codegen.class_names_from_module(model))


ROUND_TRIP = [
    "lenet5", "vgg11_bn", "resnet18", "resnet50", "googlenet", "densenet121", "mobilenet_v1",
    "fcn8s", "se_resnet18", "resnet20",
]  # fmt: skip


@pytest.mark.parametrize("name", ROUND_TRIP)
def test_source_round_trips_to_the_zoo_model(name: str, tmp_path: Path) -> None:
    graph, source = _source(name)
    torch.manual_seed(1)
    original, shape = zoo.build(name)
    original.eval()
    generated = _exec_as_module(source, tmp_path, name).build_model().eval()
    gen = _shapes(generated)
    assert gen == _shapes(build_module(graph))
    src = _shapes(original)
    # GoogLeNet's auxiliary classifiers are in the graph as training-only nodes: every key.
    assert set(src) == set(gen)
    assert all(src[k] == v for k, v in gen.items())
    result = generated.load_state_dict(original.state_dict(), strict=False)
    assert not result.missing_keys
    x = torch.randn(2, *shape)
    with torch.no_grad():
        want = original(x)
        got = generated(x)
    torch.testing.assert_close(got, want)


def test_resnet_source_reads_like_hand_written_code() -> None:
    _, source = _source("resnet18")
    assert "class BasicBlock(nn.Module):" in source
    assert "class ResNet(nn.Module):" in source
    assert "out = self.conv1(x)" in source
    assert "out = out + x" in source and "x = x + identity" in source
    assert "identity = self.downsample(x)" in source
    assert "self.downsample = nn.Sequential(nn.Conv2d(16, 32, 1, stride=2, bias=False)" in source
    assert "def build_model() -> ResNet:" in source
    assert source.startswith('"""') and "import torch\n" in source
    compile(source, "<resnet18>", "exec")
    # one class serves every identical block
    assert source.count("class BasicBlock(nn.Module):") == 1
    assert "Block used by layer1.0, layer1.1." in source


def test_cat_and_functional_calls_are_written_as_code() -> None:
    _, dense = _source("densenet121")
    assert "torch.cat([" in dense
    _, res20 = _source("resnet20")
    assert "F.pad(x, (0, 0, 0, 0, 0, 16)" in res20


class _Functional(nn.Module):
    """A model written with functional calls, a reshape, a mean and a chunk."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.head = nn.Linear(4, 5)
        self.scale = nn.Parameter(torch.ones(1, 8, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.conv(x)) * self.scale
        a, b = y.chunk(2, dim=1)
        z = torch.cat([torch.sigmoid(a), b], 1)
        z = F.max_pool2d(z, 2)
        z = z.mean([2, 3]).view(z.shape[0], 2, 4)
        return self.head(z).flatten(1)


def test_graph_with_functional_ops_round_trips(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = _Functional().eval()
    graph = from_module(model, (3, 8, 8))
    source = codegen.to_source(graph, codegen.class_names_from_module(model))
    generated = _exec_as_module(source, tmp_path, "functional").build_model().eval()
    assert _shapes(generated) == _shapes(model)
    generated.load_state_dict(model.state_dict())
    x = torch.randn(3, 3, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(generated(x), model(x))
    assert "torch.cat([" in source and "F.relu(" in source


class _Mystery(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 2


class _WithOpaque(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3)
        self.lstm = nn.LSTM(4, 4)
        self.odd = _Mystery()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.odd(self.conv(x))


def test_opaque_parts_raise_a_clear_error_naming_the_node(tmp_path: Path) -> None:
    model = _WithOpaque()
    graph = from_module(model, (1, 6, 6))
    # make a leaf the registry does not know, as trace does for unknown module types
    node = next(n for n in graph if n.module_path == "conv")
    node.kind, node.params = "opaque", {"type": "mylib.layers.FancyConv", "num_params": 20}
    source = codegen.to_source(graph)
    assert "_opaque('conv'" in source and "mylib.layers.FancyConv" in source
    module = _exec_as_module(source, tmp_path, "opaque")
    with pytest.raises(NotImplementedError, match="conv: an opaque mylib.layers.FancyConv"):
        module.build_model()


def test_invalid_graph_is_refused_with_the_reason() -> None:
    graph, _ = _source("lenet5")
    broken = graph.copy()
    first = next(n for n in broken if n.kind == "conv2d")
    first.inputs = ["nowhere"]
    with pytest.raises(codegen.CodegenError, match="nowhere"):
        codegen.to_source(broken)
