"""Layers that run only in training (GoogLeNet's auxiliary classifiers) in the graph."""

from __future__ import annotations

import dataclasses
import importlib.util
import sys
from pathlib import Path

import pytest
import torch
import torchvision
from torch import nn
from torch.utils.data import Subset

from cnnviz.core import codegen, zoo
from cnnviz.core.analysis import analyse
from cnnviz.core.build import build_module
from cnnviz.core.data import load_dataset
from cnnviz.core.edit import EditSession
from cnnviz.core.graph import ArchGraph
from cnnviz.core.trace import from_module, from_torchvision
from cnnviz.core.training import TrainConfig, train

AUX_HEAD = ["avgpool", "conv.conv", "conv.bn", "conv.relu", "flatten", "fc1", "relu", "dropout"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _googlenet(seed: int = 0) -> tuple[nn.Module, ArchGraph]:
    torch.manual_seed(seed)
    model, shape = zoo.build("googlenet")
    return model, from_module(model, shape, name="googlenet", training_branches=True)


def _no_dropout(model: nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, nn.Dropout):
            m.p = 0.0


def test_googlenet_graph_has_both_auxiliary_classifiers_as_training_only_nodes() -> None:
    model, graph = _googlenet()
    assert graph.validate() == []
    only = [n.name for n in graph if n.training_only]
    assert only == [f"aux{k}.{part}" for k in (1, 2) for part in [*AUX_HEAD, "fc2"]]
    assert graph.outputs == ["fc"]
    assert graph.aux_outputs == ["aux2.fc2", "aux1.fc2"]  # the order the model returns them
    # aux1 reads the output of inception4a, aux2 that of inception4d
    assert graph["aux1.avgpool"].inputs == graph["inception4b.branch1.conv"].inputs
    assert graph["aux1.avgpool"].inputs != graph["aux2.avgpool"].inputs
    assert graph["aux2.avgpool"].inputs == graph["inception4e.branch1.conv"].inputs
    # every parameter of the model now has a node, so no note about unused modules
    assert not any("not call" in note for note in graph.notes)
    # without the training-only nodes it is exactly the eval-mode import
    plain = from_module(model, (3, 32, 32), name="googlenet")
    assert any("aux1 (" in note for note in plain.notes)
    assert [n for n in graph if not n.training_only] == list(plain)
    assert not plain.aux_outputs and not any(n.training_only for n in plain)


def test_built_model_returns_aux_logits_in_training_only() -> None:
    _, graph = _googlenet()
    net = build_module(graph)
    x = torch.randn(3, 3, 32, 32)
    net.train()
    out = net(x)
    assert isinstance(out, tuple) and len(out) == 3
    assert all(t.shape == (3, 10) for t in out)
    net.eval()
    with torch.no_grad():
        logits = net(x)
    assert isinstance(logits, torch.Tensor) and logits.shape == (3, 10)
    # eval mode skips the auxiliary heads: nothing of theirs is computed ...
    calls: list[str] = []
    net.aux1.fc2.register_forward_hook(lambda *_: calls.append("aux1"))
    with torch.no_grad():
        net(x)
    assert calls == []
    net.train()(x)
    assert calls == ["aux1"]
    # ... but a probe can still ask for one in eval mode
    net.eval()
    probed = net.run_until(x, names=["aux1.fc2"])
    assert probed["aux1.fc2"].shape == (3, 10)
    assert calls == ["aux1", "aux1"]


def _assert_same_outputs_in_both_modes(got_net, want_net, x, seed: int) -> None:
    """Equal outputs in eval mode, and in training mode the same three outputs (main and two
    auxiliary heads); the same seed and the same order of dropout calls give the same masks."""
    got_net.eval()
    want_net.eval()
    with torch.no_grad():
        torch.testing.assert_close(got_net(x), want_net(x))
    got_net.train()
    want_net.train()
    torch.manual_seed(seed)
    got = got_net(x)
    torch.manual_seed(seed)
    want = want_net(x)
    assert len(got) == len(want) == 3
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w)


@pytest.mark.parametrize("size", ["teaching", "original"])
def test_state_dict_keys_are_the_zoo_models(size: str) -> None:
    with torch.device("meta"):
        model, shape = zoo.build("googlenet", size=size)
        graph = from_module(model, shape, name="googlenet", training_branches=True)
        net = build_module(graph)
    ours = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    theirs = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert ours == theirs
    assert any(k.startswith("aux1.") for k in ours) and any(k.startswith("aux2.") for k in ours)


def test_zoo_weights_give_the_zoo_models_outputs_in_both_modes() -> None:
    model, graph = _googlenet()
    net = build_module(graph)
    net.load_state_dict(model.state_dict())
    _assert_same_outputs_in_both_modes(net, model, torch.randn(4, 3, 32, 32), seed=5)


def test_json_round_trip_keeps_the_flags_and_aux_outputs() -> None:
    _, graph = _googlenet()
    data = graph.to_dict()
    assert data["aux_outputs"] == ["aux2.fc2", "aux1.fc2"]
    flagged = [d["name"] for d in data["nodes"] if d.get("training_only")]
    assert len(flagged) == 18
    # the flag is written only where it is set, so other files stay as they were
    assert all("training_only" not in d for d in data["nodes"] if d["name"] not in flagged)
    loaded = ArchGraph.from_json(graph.to_json())
    assert loaded == graph
    assert [n.name for n in loaded if n.training_only] == flagged
    assert loaded.aux_outputs == graph.aux_outputs
    assert len(build_module(loaded).train()(torch.randn(2, 3, 32, 32))) == 3
    copied = graph.copy()
    assert copied.aux_outputs == graph.aux_outputs and copied["aux1.fc2"].training_only


def test_deleting_an_auxiliary_head_leaves_a_valid_graph() -> None:
    _, graph = _googlenet()
    for name in [n.name for n in graph if n.name.startswith("aux2.")]:
        graph.remove_node(name)
    assert graph.validate() == []
    assert graph.live_aux_outputs() == ["aux1.fc2"]
    assert graph.to_dict()["aux_outputs"] == ["aux1.fc2"]
    assert len(build_module(graph).train()(torch.randn(2, 3, 32, 32))) == 2


def test_editing_keeps_the_flags_and_undo_brings_a_deleted_head_back() -> None:
    _, graph = _googlenet()
    session = EditSession(graph)
    session.set_params("aux1.fc1", out_features=64)
    assert graph["aux1.fc1"].training_only and graph["aux1.fc2"].training_only
    assert graph["aux1.fc2"].params["in_features"] == 64  # adapted downstream
    session.delete([n.name for n in graph if n.group.startswith("aux2")])
    assert graph.live_aux_outputs() == ["aux1.fc2"]
    assert len(build_module(graph).train()(torch.randn(2, 3, 32, 32))) == 2
    session.undo()
    assert graph.live_aux_outputs() == ["aux2.fc2", "aux1.fc2"]
    assert graph["aux2.fc2"].training_only
    out = build_module(graph).train()(torch.randn(2, 3, 32, 32))
    assert [t.shape for t in out] == [(2, 10)] * 3


def test_one_training_batch_adds_the_weighted_aux_losses() -> None:
    data = load_dataset("shapes32", train_size=200, val_fraction=0.2, seed=0)
    data = dataclasses.replace(data, train=Subset(data.train, range(8)))
    _, graph = _googlenet()
    torch.manual_seed(0)
    net = build_module(graph)
    _no_dropout(net)  # the masks would depend on the order of the samples
    images, labels = data.train.dataset.batch(list(range(8)))
    net.train()
    with torch.no_grad():
        logits, aux2, aux1 = net(images)
    ce = nn.functional.cross_entropy
    main = ce(logits, labels).item()
    expected = main + 0.3 * (ce(aux1, labels).item() + ce(aux2, labels).item())
    config = TrainConfig(device="cpu", num_threads=1, batch_size=8, report_every_n_steps=1)
    first = next(iter(train(net, data, config)))
    assert first.kind == "step" and first.global_step == 1
    assert first.batch_loss == pytest.approx(expected, rel=1e-4)
    assert main < first.batch_loss * 0.8  # the auxiliary part matters


def test_generated_source_returns_the_aux_logits_in_training(tmp_path: Path) -> None:
    model, graph = _googlenet()
    source = codegen.to_source(graph, codegen.class_names_from_module(model))
    assert "        if self.training:\n            aux1 = self.aux1(x)" in source
    path = tmp_path / "gen_googlenet.py"
    path.write_text(source, encoding="utf-8")
    spec = importlib.util.spec_from_file_location("cnnviz_gen_googlenet_aux", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.modules.pop(spec.name, None)
    generated = module.build_model()
    assert generated.load_state_dict(model.state_dict()) is not None  # strict: every key
    net = build_module(graph)
    net.load_state_dict(model.state_dict())
    _assert_same_outputs_in_both_modes(generated, net, torch.randn(2, 3, 32, 32), seed=3)


def test_analysis_counts_aux_params_but_inference_macs() -> None:
    model, graph = _googlenet()
    a = analyse(graph)
    assert a.ok
    assert a.total_params == sum(p.numel() for p in model.parameters())
    plain = analyse(from_module(model, (3, 32, 32), name="googlenet"))
    assert a.macs == plain.macs and a.ops == plain.ops
    # the heads' own figures are there: 1x1 conv on 4x4, fc1, fc2 (hand count)
    assert a["aux1.conv.conv"].output_shape == (32, 4, 4)
    assert a["aux1.fc1"].macs == 32 * 16 * 256 and a["aux1.fc2"].macs == 256 * 10
    assert a.groups["aux1"].params == sum(p.numel() for p in model.aux1.parameters())


def test_inception_v3_with_aux_head_matches_torchvision_published_figures() -> None:
    # torchvision publishes Inception v3's parameters with AuxLogits and its MACs without:
    # the convention the analysis follows for training-only nodes.
    graph = from_torchvision("inception_v3", aux_logits=True)
    assert graph.aux_outputs == ["AuxLogits.fc"]
    only = [n for n in graph if n.training_only]
    assert len(only) == 10 and all(n.group.startswith("AuxLogits") for n in only)
    a = analyse(graph)
    meta = torchvision.models.Inception_V3_Weights.DEFAULT.meta
    assert a.total_params == meta["num_params"]
    assert round(a.macs / 1e9, 3) == meta["_ops"]


@pytest.mark.parametrize("name", ["resnet18", "lenet5"])
def test_models_without_aux_heads_trace_as_before(name: str) -> None:
    with torch.device("meta"):
        model, shape = zoo.build(name)
    graph = from_module(model, shape, name=name, training_branches=True)
    assert graph == from_module(model, shape, name=name)
    assert not graph.aux_outputs and not any(n.training_only for n in graph)
    assert "aux_outputs" not in graph.to_dict()


class _Unused(nn.Module):
    """A head built but never called, in either mode."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.spare = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


def test_a_module_unused_in_both_modes_is_still_reported() -> None:
    graph = from_module(_Unused(), (3, 8, 8), training_branches=True)
    assert not any(n.training_only for n in graph) and not graph.aux_outputs
    assert any("10 parameters belong to modules" in note for note in graph.notes)


def test_the_zoo_source_the_app_opens_has_the_auxiliary_classifiers_and_the_summary_says_so():
    from cnnviz.core.sources import load_source
    from cnnviz.core.summary import render

    graph = load_source("googlenet", size="teaching")
    assert graph.aux_outputs == ["aux2.fc2", "aux1.fc2"]
    model, _ = zoo.build("googlenet", size="teaching")
    aux_params = sum(
        p.numel() for name, p in model.named_parameters() if name.startswith(("aux1.", "aux2."))
    )
    text = render(graph, analyse(graph), "table", depth=1)
    rows = {line.split()[0]: line for line in text.splitlines() if line.strip()}
    assert "group, training only" in rows["aux1"] and "group, training only" in rows["aux2"]
    assert "training only" not in rows["inception4a"]
    assert f"Training only: 18 layers (auxiliary classifiers), {aux_params:,} params" in text
