"""The model zoo at original size, checked against torchvision and against hand counts.

Big networks are built on the meta device: shapes and parameter counts without memory or time.
"""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

from cnnviz.core import zoo

TWINS = [e for e in zoo.entries() if e.torchvision_name is not None]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _n_params(model: nn.Module, skip_prefixes: tuple[str, ...] = ()) -> int:
    return sum(
        p.numel() for name, p in model.named_parameters() if not name.startswith(skip_prefixes)
    )


def _build_meta(name: str, **kwargs: int) -> nn.Module:
    with torch.device("meta"):
        model, _ = zoo.build(name, size="original", **kwargs)
    return model


def _torchvision_meta(name: str) -> nn.Module:
    kwargs = {"aux_logits": True, "init_weights": True} if name == "googlenet" else {}
    with torch.device("meta"):
        return torchvision.models.get_model(name, weights=None, **kwargs)


# -- torchvision twins: same names, shapes and published parameter counts -----------------


def test_twins_cover_the_torchvision_classics() -> None:
    assert {e.torchvision_name for e in TWINS} == {
        "alexnet", "vgg11", "vgg11_bn", "vgg13", "vgg13_bn", "vgg16", "vgg16_bn", "vgg19",
        "vgg19_bn", "googlenet", "resnet18", "resnet34", "resnet50", "resnet101", "resnet152",
        "wide_resnet50_2", "wide_resnet101_2", "resnext50_32x4d", "resnext101_32x8d",
        "densenet121", "densenet169", "densenet201",
    }  # fmt: skip


@pytest.mark.parametrize("entry", TWINS, ids=lambda e: e.name)
def test_twin_matches_torchvision(entry: zoo.ZooEntry) -> None:
    assert entry.torchvision_name is not None
    ours = _build_meta(entry.name)
    theirs = _torchvision_meta(entry.torchvision_name)
    ours_state = {k: tuple(v.shape) for k, v in ours.state_dict().items()}
    theirs_state = {k: tuple(v.shape) for k, v in theirs.state_dict().items()}
    assert ours_state == theirs_state

    published = torchvision.models.get_model_weights(entry.torchvision_name).DEFAULT
    # torchvision's published GoogLeNet count leaves out the auxiliary classifiers.
    skip = ("aux1.", "aux2.") if entry.name == "googlenet" else ()
    assert _n_params(ours, skip) == published.meta["num_params"]


def test_googlenet_aux_classifiers_counted_by_hand() -> None:
    model = _build_meta("googlenet")

    def aux(in_channels: int) -> int:
        conv = in_channels * 128 + 2 * 128  # 1x1 conv without bias, batch norm
        return conv + (2048 * 1024 + 1024) + (1024 * 1000 + 1000)

    assert _n_params(model) == 6_624_904 + aux(512) + aux(528) == 13_004_888


@pytest.mark.parametrize("name", ["resnet18", "densenet121", "googlenet", "alexnet"])
def test_twin_computes_what_torchvision_computes(name: str) -> None:
    # Same weights, same input, same output: the forward passes agree, not just the shapes.
    torch.manual_seed(0)
    ours, _ = zoo.build(name, size="original")
    kwargs = {"aux_logits": True, "init_weights": True} if name == "googlenet" else {}
    theirs = torchvision.models.get_model(name, weights=None, **kwargs)
    ours.load_state_dict(theirs.state_dict())
    ours.eval()
    theirs.eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(x))


# -- everything else: hand calculations and the papers' figures -----------------------------


def _conv(cin: int, cout: int, k: int, bias: bool = True, groups: int = 1) -> int:
    return cin // groups * cout * k * k + (cout if bias else 0)


def _bn(c: int) -> int:
    return 2 * c


def _linear(fin: int, fout: int) -> int:
    return fin * fout + fout


def _cifar_resnet(n: int) -> int:
    """He et al. CIFAR ResNet-(6n+2), option A shortcuts: convs without bias, BN, linear."""
    total = _conv(3, 16, 3, False) + _bn(16)
    cin = 16
    for c in (16, 32, 64):
        for _ in range(n):
            total += _conv(cin, c, 3, False) + _bn(c) + _conv(c, c, 3, False) + _bn(c)
            cin = c
    return total + _linear(64, 10)


def _wrn(depth: int, k: int) -> int:
    """WRN-depth-k: pre-activation blocks, 1x1 projection where the shape changes."""
    n = (depth - 4) // 6
    total = _conv(3, 16, 3, False)
    cin = 16
    for c in (16 * k, 32 * k, 64 * k):
        for _ in range(n):
            total += _bn(cin) + _conv(cin, c, 3, False) + _bn(c) + _conv(c, c, 3, False)
            if cin != c:
                total += _conv(cin, c, 1, False)
            cin = c
    return total + _bn(cin) + _linear(cin, 10)


def _se(c: int, r: int = 16) -> int:
    return _conv(c, c // r, 1) + _conv(c // r, c, 1)


def _preact_resnet18() -> int:
    convs = (
        _conv(3, 64, 7, False)
        + 4 * _conv(64, 64, 3, False)
        + _conv(64, 128, 3, False) + 3 * _conv(128, 128, 3, False) + _conv(64, 128, 1, False)
        + _conv(128, 256, 3, False) + 3 * _conv(256, 256, 3, False) + _conv(128, 256, 1, False)
        + _conv(256, 512, 3, False) + 3 * _conv(512, 512, 3, False) + _conv(256, 512, 1, False)
    )  # fmt: skip
    # Each block normalises its input (bn1) and its middle (bn2); one more BN at the end.
    bns = sum(
        _bn(cin) + _bn(c) + _bn(c) + _bn(c)
        for cin, c in ((64, 64), (64, 128), (128, 256), (256, 512))
    ) + _bn(512)
    return convs + bns + _linear(512, 1000)


def _mobilenet_v1() -> int:
    total = _conv(3, 32, 3, False) + _bn(32)
    cin = 32
    for c in (64, 128, 128, 256, 256, 512, 512, 512, 512, 512, 512, 1024, 1024):
        total += _conv(cin, cin, 3, False, groups=cin) + _bn(cin) + _conv(cin, c, 1, False)
        total += _bn(c)
        cin = c
    return total + _linear(1024, 1000)


def _nin_imagenet() -> int:
    def mlpconv(cin: int, c: int, k: int, out: int | None = None) -> int:
        return _conv(cin, c, k) + _conv(c, c, 1) + _conv(c, out or c, 1)

    return (
        mlpconv(3, 96, 11) + mlpconv(96, 256, 5) + mlpconv(256, 384, 3)
        + mlpconv(384, 1024, 3, out=1000)
    )  # fmt: skip


_VGG16_CONVS = sum(
    _conv(cin, c, 3)
    for cin, c in [
        (3, 64), (64, 64), (64, 128), (128, 128), (128, 256), (256, 256), (256, 256),
        (256, 512), (512, 512), (512, 512), (512, 512), (512, 512), (512, 512),
    ]
)  # fmt: skip
_FCN_TRUNK = _VGG16_CONVS + _conv(512, 4096, 7) + _conv(4096, 4096, 1) + _conv(4096, 21, 1)


def _up(k: int) -> int:
    return 21 * 21 * k * k  # transposed convolution, no bias


EXPECTED_ORIGINAL_PARAMS: dict[str, int] = {
    # LeNet-5 at 1x32x32: C1 156 + C3 2,416 + C5 48,120 + F6 10,164 + output 850.
    "lenet5": 156 + 2_416 + 48_120 + 10_164 + 850,
    # Two-tower AlexNet: convolutions 2, 4 and 5 in two groups; 60,965,224 is the paper's figure.
    "alexnet_lrn": _conv(3, 96, 11) + _conv(96, 256, 5, groups=2) + _conv(256, 384, 3)
    + _conv(384, 384, 3, groups=2) + _conv(384, 256, 3, groups=2)
    + _linear(256 * 6 * 6, 4096) + _linear(4096, 4096) + _linear(4096, 1000),
    "zfnet": _conv(3, 96, 7) + _conv(96, 256, 5) + _conv(256, 384, 3) + _conv(384, 384, 3)
    + _conv(384, 256, 3) + _linear(256 * 6 * 6, 4096) + _linear(4096, 4096)
    + _linear(4096, 1000),
    "nin": _nin_imagenet(),
    "resnet20": _cifar_resnet(3),
    "resnet32": _cifar_resnet(5),
    "resnet56": _cifar_resnet(9),
    "plain20": _cifar_resnet(3),
    "plain56": _cifar_resnet(9),
    "preact_resnet18": _preact_resnet18(),
    "wrn16_4": _wrn(16, 4),
    "wrn28_10": _wrn(28, 10),
    # torchvision's ResNet counts plus an SE block (two biased 1x1 convs) per residual block.
    "se_resnet18": 11_689_512 + 2 * sum(_se(c) for c in (64, 128, 256, 512)),
    "se_resnet50": 25_557_032 + 3 * _se(256) + 4 * _se(512) + 6 * _se(1024) + 3 * _se(2048),
    # timm's and Cadene's published count for inception_resnet_v2 (55.84M); it is also Keras's
    # 55,813,192 trainable parameters plus the 30,272 batch norm scales Keras leaves out.
    "inception_resnet_v2": 55_843_464,
    "mobilenet_v1": _mobilenet_v1(),
    "dilated_context": 7 * _conv(21, 21, 3) + _conv(21, 21, 1),
    "grouped_convnet": _conv(3, 32, 3, False) + _bn(32)
    + sum(
        _conv(cin, c, 3, False, groups=8) + _bn(c) + _conv(c, c, 1, False) + _bn(c)
        for cin, c in ((32, 64), (64, 128), (128, 256))
    )
    + _linear(256, 10),
    "transposed_convnet": _conv(3, 32, 3, False) + _bn(32) + _conv(32, 64, 3, False) + _bn(64)
    + _conv(64, 128, 3, False) + _bn(128)
    + 128 * 64 * 16 + _bn(64) + 64 * 32 * 16 + _bn(32) + 32 * 32 * 16 + _bn(32)
    + _conv(32, 10, 1),
    "fcn32s": _FCN_TRUNK + _up(64),
    "fcn16s": _FCN_TRUNK + _conv(512, 21, 1) + _up(4) + _up(32),
    "fcn8s": _FCN_TRUNK + _conv(512, 21, 1) + _conv(256, 21, 1) + 2 * _up(4) + _up(16),
}  # fmt: skip

# Figures printed in the papers, to the precision printed.
PAPER_FIGURES: dict[str, tuple[float, int]] = {
    "alexnet_lrn": (60_965_224, 0),  # widely quoted for the two-tower network
    "resnet20": (0.27e6, -4),
    "resnet32": (0.46e6, -4),
    "resnet56": (0.85e6, -4),
    "wrn16_4": (2.7e6, -5),
    "wrn28_10": (36.5e6, -5),
    "se_resnet50": (28.09e6, -4),
    "mobilenet_v1": (4.2e6, -5),
}


def test_every_entry_without_a_twin_has_a_hand_count() -> None:
    no_twin = {e.name for e in zoo.entries() if e.torchvision_name is None}
    assert no_twin == set(EXPECTED_ORIGINAL_PARAMS)


@pytest.mark.parametrize("name", sorted(EXPECTED_ORIGINAL_PARAMS))
def test_original_parameter_count(name: str) -> None:
    model = _build_meta(name)
    assert _n_params(model) == EXPECTED_ORIGINAL_PARAMS[name]
    if name in PAPER_FIGURES:
        figure, digits = PAPER_FIGURES[name]
        assert round(_n_params(model), digits) == figure


def test_known_exact_counts() -> None:
    # Numbers quoted in docstrings and notes, checked once more in full.
    assert EXPECTED_ORIGINAL_PARAMS["lenet5"] == 61_706
    assert EXPECTED_ORIGINAL_PARAMS["mobilenet_v1"] == 4_231_976
    assert EXPECTED_ORIGINAL_PARAMS["zfnet"] == 62_357_608
    assert EXPECTED_ORIGINAL_PARAMS["se_resnet50"] == 28_088_024
    assert EXPECTED_ORIGINAL_PARAMS["wrn16_4"] == 2_748_890
    assert EXPECTED_ORIGINAL_PARAMS["dilated_context"] == 28_392
    assert EXPECTED_ORIGINAL_PARAMS["fcn8s"] == 134_489_759
    assert EXPECTED_ORIGINAL_PARAMS["fcn32s"] == 136_152_917


def test_lenet_teaching_and_original_share_the_count() -> None:
    small, _ = zoo.build("lenet5")
    assert _n_params(small) == 61_706


# -- forward at original size (on meta: shapes only) -----------------------------------------


@pytest.mark.parametrize("entry", zoo.entries(), ids=lambda e: e.name)
def test_original_forward_shape(entry: zoo.ZooEntry) -> None:
    model = _build_meta(entry.name).eval()
    c, h, w = entry.original_input
    with torch.device("meta"):
        out = model(torch.empty(2, c, h, w))
    if entry.family == "FCN" or entry.name == "dilated_context":
        classes = 21  # PASCAL VOC
    elif entry.original_input in ((1, 32, 32), (3, 32, 32)):
        classes = 10  # MNIST, CIFAR-10
    else:
        classes = 1000  # ImageNet
    expected = (2, classes) if entry.task == "classification" else (2, classes, h, w)
    assert out.shape == expected


def test_original_overrides_of_classes_and_channels() -> None:
    model = _build_meta("resnet50", num_classes=5, in_channels=1)
    assert model.conv1.in_channels == 1 and model.fc.out_features == 5
    model = _build_meta("fcn8s", num_classes=2)
    with torch.device("meta"):
        assert model(torch.empty(1, 3, 64, 96)).shape == (1, 2, 64, 96)
