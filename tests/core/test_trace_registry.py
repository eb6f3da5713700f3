"""The import's shortcut against torch: registry shape rules give what torch computes.

On meta tensors, ``trace._measure`` takes the output shape of every node the registry knows from
its shape rule instead of running torch (that is what makes importing DenseNet-201 fast). Here
every node value of that run is compared with a run that executes every node in torch
(``use_registry=False``), for the whole zoo at original size and every torchvision CNN
classifier at its evaluation resolution. The teaching sizes are checked against a real forward
pass in ``test_trace.py``.

Models that take more than about a second are marked slow (they still run by default).
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torchvision
from torch import nn

from cnnviz.core import trace, zoo

_NOT_CNNS = ("vit_", "swin_", "maxvit_")
_SLOW_TORCHVISION = {
    "convnext_base",
    "convnext_large",
    "densenet161",
    "densenet169",
    "densenet201",
    "efficientnet_b1",
    "efficientnet_b2",
    "efficientnet_b3",
    "efficientnet_b4",
    "efficientnet_b5",
    "efficientnet_b6",
    "efficientnet_b7",
    "efficientnet_v2_m",
    "efficientnet_v2_l",
    "regnet_x_8gf",
    "regnet_x_16gf",
    "regnet_x_32gf",
    "regnet_y_1_6gf",
    "regnet_y_3_2gf",
    "regnet_y_8gf",
    "regnet_y_16gf",
    "regnet_y_32gf",
    "regnet_y_128gf",
    "resnet152",
    "wide_resnet101_2",
}
_SLOW_ZOO = {"inception_resnet_v2", "resnet152", "densenet201", "densenet169", "wide_resnet101_2"}


def _torchvision_cnns() -> list[str]:
    names = torchvision.models.list_models(module=torchvision.models)
    return sorted(n for n in names if not n.startswith(_NOT_CNNS))


def _described(v: Any) -> Any:
    """A node value as plain data: tensor shapes (batch included), Python values as they are."""
    if isinstance(v, torch.Tensor):
        return ("tensor", tuple(v.shape), v.dtype)
    if isinstance(v, (tuple, list)):
        return type(v).__name__, tuple(_described(x) for x in v)
    if isinstance(v, nn.Module):
        return "module"
    return v


def _compare(model: nn.Module, shape: tuple[int, ...]) -> int:
    """Compare the registry run with the all-torch run node by node; returns how many
    nodes the registry answered."""
    graph = trace._Tracer().trace(model)
    fast = trace._measure(model, graph, [shape])
    slow = trace._measure(model, graph, [shape], use_registry=False)
    answered = 0
    for node in graph.nodes:
        if node.op in ("placeholder", "get_attr"):
            continue
        assert _described(fast[node]) == _described(slow[node]), (node.name, node.target)
        answered += node.op in ("call_module", "call_function", "call_method")
    return answered


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(n, marks=pytest.mark.slow) if n in _SLOW_TORCHVISION else n
        for n in _torchvision_cnns()
    ],
)
def test_registry_shapes_equal_torch_for_torchvision(name):
    model = trace.build_torchvision(name).eval()
    assert _compare(model, trace.default_input_shape(name)) > 10


@pytest.mark.parametrize(
    "name",
    [pytest.param(n, marks=pytest.mark.slow) if n in _SLOW_ZOO else n for n in zoo.names()],
)
def test_registry_shapes_equal_torch_for_the_zoo_at_original_size(name):
    with torch.device("meta"):
        model, shape = zoo.build(name, size="original")
    assert _compare(model.eval(), shape) > 5


def test_a_wrong_rule_would_be_caught(monkeypatch):
    """The comparison is not vacuous: a registry rule that is off by one shows up."""
    from dataclasses import replace

    from cnnviz.core import ops

    spec = ops.REGISTRY["relu"]
    monkeypatch.setitem(
        ops.REGISTRY, "relu", replace(spec, shape=lambda p, ins: (ins[0][0] + 1, *ins[0][1:]))
    )
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
    with pytest.raises(AssertionError):
        _compare(model, (3, 8, 8))


def test_the_registry_answers_every_module_call_of_densenet():
    """No module of DenseNet-121 runs in torch during the import's shape run; with the
    registry switched off, every one does."""
    model = trace.build_torchvision("densenet121").eval()
    graph = trace._Tracer().trace(model)
    ran: list[str] = []
    for node in graph.nodes:
        if node.op == "call_module":
            sub = model.get_submodule(node.target)
            sub.register_forward_hook(lambda m, i, o, n=node.target: ran.append(n))
    trace._measure(model, graph, [(3, 224, 224)])
    assert ran == []
    trace._measure(model, graph, [(3, 224, 224)], use_registry=False)
    assert len(ran) == sum(1 for n in graph.nodes if n.op == "call_module") > 300
