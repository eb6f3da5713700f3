"""The model zoo at teaching size: registry, build, forward, backward, torch.fx trace."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest
import torch
import torch.fx
from torch import nn

from cnnviz.core import zoo
from cnnviz.core.zoo.googlenet import GoogLeNetOutputs

FAMILIES = {
    "LeNet",
    "AlexNet",
    "ZFNet",
    "VGG",
    "NiN",
    "GoogLeNet",
    "ResNet",
    "Pre-activation ResNet",
    "Wide ResNet",
    "ResNeXt",
    "DenseNet",
    "SENet",
    "Inception-ResNet",
    "MobileNet",
    "Dilated / grouped / transposed",
    "FCN",
}
TEACHING_INPUTS = {(1, 28, 28), (3, 32, 32)}
# The brief for teaching nets: train in seconds on a laptop CPU.
MAX_TEACHING_PARAMS = 2_000_000


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _logits(out: torch.Tensor | tuple[torch.Tensor, ...]) -> list[torch.Tensor]:
    return list(out) if isinstance(out, tuple) else [out]


# -- registry -------------------------------------------------------------------------------


def test_names_are_unique_lowercase_and_start_with_lenet() -> None:
    names = zoo.names()
    assert len(names) == len(set(names))
    assert names[0] == "lenet5"
    assert all(n == n.lower() and " " not in n for n in names)
    assert [e.name for e in zoo.entries()] == names


def test_expected_classics_are_present() -> None:
    wanted = {
        "lenet5", "alexnet", "alexnet_lrn", "zfnet", "vgg11", "vgg16", "vgg16_bn", "vgg19_bn",
        "nin", "googlenet", "resnet18", "resnet50", "resnet152", "resnet20", "resnet56",
        "preact_resnet18", "wide_resnet50_2", "wrn16_4", "resnext50_32x4d", "densenet121",
        "se_resnet50", "inception_resnet_v2", "mobilenet_v1", "dilated_context", "fcn8s",
        "fcn32s",
    }  # fmt: skip
    assert wanted <= set(zoo.names())


@pytest.mark.parametrize("entry", zoo.entries(), ids=lambda e: e.name)
def test_entry_metadata_is_well_formed(entry: zoo.ZooEntry) -> None:
    assert entry.family in FAMILIES
    assert entry.task in ("classification", "segmentation")
    assert entry.title and entry.paper
    assert entry.note and "\n" not in entry.note and len(entry.note) <= 100
    assert entry.teaching_input in TEACHING_INPUTS
    assert len(entry.original_input) == 3 and all(v > 0 for v in entry.original_input)
    assert callable(entry.builder)
    assert zoo.get(entry.name) is entry


def test_get_unknown_name_suggests_close_matches() -> None:
    with pytest.raises(KeyError, match="resnet50"):
        zoo.get("resnet5O")
    with pytest.raises(KeyError, match="densenet121"):
        zoo.get("densenet12")


def test_get_is_case_insensitive() -> None:
    assert zoo.get("ResNet50").name == "resnet50"


def test_build_rejects_unknown_size_naming_the_choices() -> None:
    with pytest.raises(ValueError, match="teaching.*original"):
        zoo.build("lenet5", size="huge")


def test_build_returns_the_input_shape_of_the_size() -> None:
    _, shape = zoo.build("lenet5")
    assert shape == (1, 28, 28)
    with torch.device("meta"):
        _, shape = zoo.build("lenet5", size="original")
    assert shape == (1, 32, 32)
    _, shape = zoo.build("resnet20", in_channels=1)
    assert shape == (1, 32, 32)


def test_core_zoo_imports_no_qt() -> None:
    code = (
        "import sys, cnnviz.core.zoo\n"
        "qt = ('PySide6', 'pyqtgraph', 'shiboken6')\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in qt]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


# -- every entry at teaching size ---------------------------------------------------------


@pytest.mark.parametrize("name", zoo.names())
def test_teaching_forward_backward_trace(name: str) -> None:
    torch.manual_seed(0)
    entry = zoo.get(name)
    model, shape = zoo.build(name)
    assert shape == entry.teaching_input
    n_params = _n_params(model)
    assert 0 < n_params <= MAX_TEACHING_PARAMS, f"{name}: {n_params:,} parameters"
    # Nothing in place (hooks must see tensors unmodified) and no empty placeholder nodes.
    for mname, m in model.named_modules():
        assert not isinstance(m, nn.Identity), f"{name}: {mname} is an nn.Identity"
        assert not getattr(m, "inplace", False), f"{name}: {mname} works in place"

    x = torch.randn(2, *shape)
    model.train()
    outputs = _logits(model(x))
    for out in outputs:
        if entry.task == "classification":
            assert out.shape == (2, 10)
        else:
            assert out.shape == (2, 10, shape[1], shape[2])
        assert torch.isfinite(out).all()
    loss = sum(out.float().pow(2).mean() for out in outputs)
    loss.backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, f"{name}: no gradient for {pname}"
        assert torch.isfinite(p.grad).all(), f"{name}: non-finite gradient for {pname}"

    # torch.fx traces the network in both modes; in eval mode the traced module computes the
    # same thing as the original.
    traced_train = torch.fx.symbolic_trace(model)
    assert len(_logits(traced_train(x))) == len(outputs)
    model.eval()
    traced = torch.fx.symbolic_trace(model)
    with torch.no_grad():
        expected = model(x)
        got = traced(x)
    assert isinstance(expected, torch.Tensor) and isinstance(got, torch.Tensor)
    torch.testing.assert_close(got, expected)


@pytest.mark.parametrize("name", ["lenet5", "alexnet", "resnet18", "googlenet", "fcn8s"])
def test_teaching_overrides_of_classes_and_channels(name: str) -> None:
    entry = zoo.get(name)
    channels = 3 if entry.teaching_input[0] == 1 else 1
    model, shape = zoo.build(name, num_classes=7, in_channels=channels)
    assert shape == (channels, *entry.teaching_input[1:])
    model.eval()
    out = model(torch.randn(2, *shape))
    assert out.shape[:2] == (2, 7)


def test_lenet_classic_form_uses_tanh_and_average_pooling() -> None:
    model = zoo.lenet.lenet5(classic=True)
    kinds = {type(m) for m in model.modules()}
    assert nn.Tanh in kinds and nn.AvgPool2d in kinds
    assert nn.ReLU not in kinds and nn.MaxPool2d not in kinds
    assert _n_params(model) == 61_706


# -- behaviour of particular designs --------------------------------------------------------


def test_googlenet_returns_aux_outputs_only_in_training() -> None:
    torch.manual_seed(0)
    model, shape = zoo.build("googlenet")
    x = torch.randn(2, *shape)
    model.train()
    out = model(x)
    assert isinstance(out, GoogLeNetOutputs)
    assert out._fields == ("logits", "aux_logits2", "aux_logits1")
    assert all(t.shape == (2, 10) for t in out)
    traced = torch.fx.symbolic_trace(model)
    assert isinstance(traced(x), GoogLeNetOutputs)
    model.eval()
    assert isinstance(model(x), torch.Tensor)
    no_aux = zoo.googlenet.googlenet(aux_logits=False).train()
    assert isinstance(no_aux(x), torch.Tensor)
    assert not any(n.startswith("aux") for n, _ in no_aux.named_parameters())


def test_cifar_resnet_option_a_shortcut_subsamples_and_zero_pads() -> None:
    shortcut = zoo.resnet.ZeroPadShortcut(16, 32, stride=2)
    assert _n_params(shortcut) == 0
    x = torch.randn(2, 16, 8, 8)
    y = shortcut(x)
    assert y.shape == (2, 32, 4, 4)
    torch.testing.assert_close(y[:, :16], x[:, :, ::2, ::2])
    assert (y[:, 16:] == 0).all()


def test_se_block_rescales_channels_by_a_sigmoid_gate() -> None:
    torch.manual_seed(0)
    se = zoo.senet.SEBlock(32, reduction=16)
    x = torch.randn(2, 32, 5, 5)
    squeezed = x.mean(dim=(2, 3), keepdim=True)
    gate = torch.sigmoid(se.fc2(torch.relu(se.fc1(squeezed))))
    torch.testing.assert_close(se(x), x * gate)
    assert se.fc1.out_channels == 2
    traced = torch.fx.symbolic_trace(se)
    assert any(n.target is __import__("operator").mul for n in traced.graph.nodes)


def test_inception_resnet_scales_the_residual_branch() -> None:
    torch.manual_seed(0)
    block = zoo.inception_resnet.Block35(32, scale=0.17, d=4).eval()
    x = torch.randn(2, 32, 6, 6)
    branch = block.conv2d(torch.cat([b(x) for b in block.branches], 1))
    torch.testing.assert_close(block(x), torch.relu(x + 0.17 * branch))


def test_densenet_layers_see_all_earlier_maps() -> None:
    model = zoo.densenet.densenet121()
    block = model.features.denseblock1
    growth = block.denselayer1.conv2.out_channels
    for i, layer in enumerate(block.values()):
        assert layer.conv1.in_channels == 16 + i * growth


def test_mobilenet_uses_depthwise_then_pointwise() -> None:
    model = zoo.mobilenet.mobilenet_v1()
    block = model.features.block2
    assert block.depthwise.groups == block.depthwise.in_channels == block.depthwise.out_channels
    assert block.pointwise.kernel_size == (1, 1)


def test_dilated_context_module_receptive_field_is_67() -> None:
    # With positive weights and inputs no ReLU is ever inactive, so the gradient of one output
    # pixel marks exactly its receptive field: 1 + 2 * (1+1+2+4+8+16+1) = 67.
    model = zoo.conv_variants.dilated_context("original")
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                m.weight.fill_(1.0 / m.weight[0].numel())
                m.bias.fill_(0.1)
    x = torch.rand(1, 21, 96, 96, requires_grad=True) + 0.1
    x.retain_grad()
    out = model(x)
    assert out.shape == (1, 21, 96, 96)
    out[0, 0, 48, 48].backward()
    rows = (x.grad[0].abs().sum(0) > 0).any(1).nonzero().flatten()
    cols = (x.grad[0].abs().sum(0) > 0).any(0).nonzero().flatten()
    assert (rows.min().item(), rows.max().item()) == (48 - 33, 48 + 33)
    assert (cols.min().item(), cols.max().item()) == (48 - 33, 48 + 33)


def test_fcn_upsampling_starts_bilinear() -> None:
    model = zoo.fcn.fcn8s()
    up = model.upscore2
    assert up.bias is None and up.stride == (2, 2)
    # A constant map stays constant inside (the border sees fewer taps).
    y = up(torch.ones(1, up.in_channels, 6, 6))
    assert y.shape[-2:] == (12, 12)
    torch.testing.assert_close(y[..., 2:-2, 2:-2], torch.ones_like(y[..., 2:-2, 2:-2]))
    kernel = zoo.fcn.bilinear_kernel(2, 4)
    assert kernel[0, 1].abs().sum() == 0
    assert math.isclose(kernel[0, 0].sum().item(), 4.0)


def test_full_backward_hooks_work_for_grad_cam() -> None:
    # Grad-CAM hooks a block's output gradient; in-place ReLUs after a hooked module break that.
    torch.manual_seed(0)
    model, shape = zoo.build("resnet18")
    grads: list[torch.Tensor] = []
    model.layer4.register_full_backward_hook(lambda m, gin, gout: grads.append(gout[0]))
    for block in model.layer4:
        block.relu.register_full_backward_hook(lambda m, gin, gout: None)
    model(torch.randn(2, *shape))[:, 3].sum().backward()
    assert grads and grads[0].shape == (2, 128, 4, 4)
