"""Probes checked against torch itself and against hand calculations written out here."""

from __future__ import annotations

import itertools
import threading
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from cnnviz.core.analysis import analyse
from cnnviz.core.build import build_module
from cnnviz.core.data import DatasetBundle, InMemoryImageDataset, load_dataset
from cnnviz.core.graph import ArchGraph
from cnnviz.core.probes import (
    ActivationSnapshot,
    FilterSnapshot,
    ProbeBatch,
    ProbeBundle,
    ProbeError,
    ProbeObserver,
    Prober,
    Timeline,
    confusion_matrix,
    default_cam_layer,
    filter_layer_for,
    first_conv_layer,
    rf_by_depth,
    theoretical_box,
)
from cnnviz.core.sources import load_source
from cnnviz.core.training import TrainConfig, train


def _batch(images: torch.Tensor, classes: int = 10) -> ProbeBatch:
    display = (images.clamp(0, 1) * 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    return ProbeBatch(
        inputs=images,
        labels=np.zeros(images.shape[0], dtype=np.int64),
        display=display,
        classes=tuple(str(i) for i in range(classes)),
    )


@pytest.fixture(scope="module")
def shapes() -> DatasetBundle:
    return load_dataset("shapes", train_size=600)


# --------------------------------------------------------------------------- activations


def test_activations_equal_forward_hooks_in_eval_mode(shapes):
    torch.manual_seed(0)
    graph = load_source("lenet5", size="teaching")
    model = build_module(graph)
    model.train()
    batch = ProbeBatch.from_dataset(shapes, n=6)
    prober = Prober(model, graph, batch)
    layers = ["features.c1", "features.act3", "features.s4", "classifier.output"]
    snaps = prober.activations(layers)
    assert model.training, "the probe must put training mode back"

    seen: dict[str, torch.Tensor] = {}
    hooks = [
        model.get_submodule(name).register_forward_hook(
            lambda _m, _i, out, n=name: seen.__setitem__(n, out.detach())
        )
        for name in layers
    ]
    model.eval()
    with torch.no_grad():
        logits = model(batch.inputs)
    for h in hooks:
        h.remove()
    for name in layers:
        expected = seen[name].numpy()
        got = snaps[name].maps
        if expected.ndim == 2:
            assert not snaps[name].spatial
            got = got[:, :, 0, 0]
        np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(snaps["classifier.output"].maps[:, :, 0, 0], logits.numpy(), 1e-6)


def test_channel_statistics_match_numpy(shapes):
    torch.manual_seed(1)
    graph = load_source("lenet5", size="teaching")
    model = build_module(graph)
    batch = ProbeBatch.from_dataset(shapes, n=4)
    snap = Prober(model, graph, batch).activation("features.act1")
    model.eval()
    with torch.no_grad():
        relu = torch.relu(model.get_submodule("features.c1")(batch.inputs)).numpy()
    for c in range(relu.shape[1]):
        values = relu[:, c]
        assert snap.channel_mean[c] == pytest.approx(values.mean(), rel=1e-5, abs=1e-7)
        assert snap.channel_std[c] == pytest.approx(values.std(), rel=1e-4, abs=1e-7)
        assert snap.zero_fraction[c] == pytest.approx((values == 0).sum() / values.size)
    assert snap.images.shape == (4, 28, 28, 1)
    assert snap.rf_size == (5, 5) and snap.rf_jump == (1, 1) and snap.rf_padding == (2, 2)


def test_dead_relu_channel_is_counted():
    graph = ArchGraph("dead")
    graph.add_input("input", (1, 6, 6))
    graph.add("conv", "conv2d", ["input"], in_channels=1, out_channels=3, kernel_size=3)
    graph.add("act", "relu", ["conv"])
    model = build_module(graph)
    conv = model.get_submodule("_cnnviz_functions.conv")
    with torch.no_grad():
        conv.weight.fill_(0.1)
        conv.bias.copy_(torch.tensor([0.0, -100.0, 0.0]))  # channel 1 never fires
    snap = Prober(model, graph, _batch(torch.rand(3, 1, 6, 6))).activation("act")
    assert snap.zero_fraction[1] == 1.0
    assert snap.zero_fraction[0] == 0.0
    assert snap.dead_channels == 1


def test_functional_nodes_of_densenet_equal_direct_computation():
    torch.manual_seed(2)
    graph = load_source("densenet121", size="teaching")
    model = build_module(graph)
    x = torch.randn(2, *graph.input_shape)
    prober = Prober(model, graph, _batch(x))
    cat_inputs = graph["cat_61"].inputs
    snaps = prober.activations(["cat_61", "flatten"])
    model.eval()
    seen: dict[str, torch.Tensor] = {}
    hooks = [
        model.get_submodule(graph[n].module_path).register_forward_hook(
            lambda _m, _i, out, n=n: seen.__setitem__(n, out.detach())
        )
        for n in [*cat_inputs, "avgpool"]
    ]
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    expected_cat = torch.cat([seen[n] for n in cat_inputs], 1).numpy()
    np.testing.assert_allclose(snaps["cat_61"].maps, expected_cat, rtol=1e-5, atol=1e-6)
    expected_flat = seen["avgpool"].flatten(1).numpy()
    np.testing.assert_allclose(snaps["flatten"].maps[:, :, 0, 0], expected_flat, 1e-5, 1e-6)


def test_modes_of_submodules_are_restored():
    graph = load_source("resnet18", size="teaching")
    model = build_module(graph)
    model.train()
    model.get_submodule("layer1.0.bn1").eval()  # e.g. a frozen batch norm
    Prober(model, graph, _batch(torch.randn(2, 3, 32, 32))).activation("layer1.0.relu")
    assert model.training
    assert not model.get_submodule("layer1.0.bn1").training
    assert model.get_submodule("layer1.0.bn2").training


def test_cached_activations_follow_weight_changes(shapes):
    graph = load_source("lenet5", size="teaching")
    model = build_module(graph)
    batch = ProbeBatch.from_dataset(shapes, n=3)
    cached = Prober(model, graph, batch, cache_bytes=2**24)
    plain = Prober(model, graph, batch)
    before = cached.activation("features.act3").maps
    np.testing.assert_array_equal(before, plain.activation("features.act3").maps)
    with torch.no_grad():
        model.get_submodule("features.c1").weight.mul_(-0.5)  # what an optimizer step does
    after = cached.activation("features.act3").maps
    np.testing.assert_array_equal(after, plain.activation("features.act3").maps)
    assert not np.array_equal(before, after)
    tiny = Prober(model, graph, batch, cache_bytes=1)  # too small: no cache, same answer
    np.testing.assert_array_equal(tiny.activation("features.act3").maps, after)


def test_unknown_layer_and_unit_outside_are_clear_errors():
    graph = load_source("lenet5", size="teaching")
    prober = Prober(build_module(graph), graph, _batch(torch.rand(1, 1, 28, 28)))
    with pytest.raises(ProbeError, match="no layer 'nope'"):
        prober.activation("nope")
    with pytest.raises(ProbeError, match="outside 'features.c1'"):
        prober.effective_receptive_field("features.c1", 0, 28, 0)
    with pytest.raises(ProbeError, match="not made by a convolution"):
        prober.filters("classifier.f6")


# --------------------------------------------------------------------------- filters


def test_filters_are_the_module_weights_and_follow_activations():
    graph = load_source("lenet5", size="teaching")
    model = build_module(graph)
    prober = Prober(model, graph, _batch(torch.rand(1, 1, 28, 28)))
    first = prober.filters("features.act1")
    assert first.layer == "features.c1" and first.first_layer
    np.testing.assert_array_equal(
        first.weights, model.get_submodule("features.c1").weight.detach().numpy()
    )
    deeper = prober.filters("features.c3")
    assert deeper.weights.shape == (16, 6, 5, 5) and not deeper.first_layer
    assert first_conv_layer(graph) == "features.c1"
    assert filter_layer_for(graph, "features.act3") == "features.c3"
    assert filter_layer_for(graph, "features.s2") is None  # pooling mixes positions


# --------------------------------------------------------------------------- receptive fields


def _positive_net(layers: list[tuple[str, str, dict]], size: int) -> tuple[ArchGraph, nn.Module]:
    graph = ArchGraph("rf")
    graph.add_input("input", (1, size, size))
    prev = "input"
    for name, kind, params in layers:
        graph.add(name, kind, [prev], **params)
        prev = name
    model = build_module(graph)
    torch.manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            if p.ndim > 1:
                p.uniform_(0.1, 1.0)  # all positive: nothing cancels, ReLUs stay open
            else:
                p.zero_()
    return graph, model


def _gradient_support(model, layer, channel, y, x, inputs) -> np.ndarray:
    """Input pixels where d unit / d input is non-zero for at least one of ``inputs``."""
    inputs = inputs.clone().requires_grad_(True)
    out = model.run_until(inputs, names=[layer])[layer]
    (grad,) = torch.autograd.grad(out[:, channel, y, x].sum(), inputs)
    return (grad.abs().sum((0, 1)) > 0).numpy()


def _box_mask(box, size: int) -> np.ndarray:
    top, left, bottom, right = (int(v) for v in box)
    mask = np.zeros((size, size), dtype=bool)
    mask[max(top, 0) : min(bottom, size - 1) + 1, max(left, 0) : min(right, size - 1) + 1] = True
    return mask


RF_NETS = {
    "stride_padding_avgpool_dilation": [
        ("c1", "conv2d", dict(in_channels=1, out_channels=2, kernel_size=3, padding=1)),
        ("r1", "relu", {}),
        # Taps 2 apart over fields 3 wide: dilated, yet without holes.
        ("c2", "conv2d", dict(in_channels=2, out_channels=2, kernel_size=3, dilation=2, padding=2)),
        ("c3", "conv2d", dict(in_channels=2, out_channels=2, kernel_size=3, stride=2, padding=1)),
        ("p1", "avg_pool2d", dict(kernel_size=2)),
    ],
    "maxpool_with_padding": [
        ("c1", "conv2d", dict(in_channels=1, out_channels=2, kernel_size=5, padding=2)),
        ("p1", "max_pool2d", dict(kernel_size=2)),
        ("c2", "conv2d", dict(in_channels=2, out_channels=2, kernel_size=3)),
        ("r2", "relu", {}),
        ("p2", "max_pool2d", dict(kernel_size=3, stride=2, padding=1)),
    ],
    "big_padding_stride3": [
        ("c1", "conv2d", dict(in_channels=1, out_channels=1, kernel_size=4, stride=3, padding=3)),
        ("c2", "conv2d", dict(in_channels=1, out_channels=1, kernel_size=2, padding=1)),
    ],
}


@pytest.mark.parametrize("net", sorted(RF_NETS))
def test_theoretical_box_is_where_the_gradient_can_be_nonzero(net):
    size = 20
    graph, model = _positive_net(RF_NETS[net], size)
    analysis = analyse(graph)
    layer = RF_NETS[net][-1][0]
    _, h, w = analysis[layer].output_shape
    # Max pooling passes gradient to one input of each window only: the pixels a unit *can*
    # depend on are the union over many inputs.
    inputs = torch.rand(256, 1, size, size) + 0.1
    prober = Prober(model, graph, _batch(inputs[:1]), analysis)
    reaches_padding = False
    for y, x in itertools.product(range(h), range(w)):
        support = _gradient_support(model, layer, 0, y, x, inputs)
        box, is_global = theoretical_box(analysis[layer].rf, y, x)
        assert not is_global
        np.testing.assert_array_equal(support, _box_mask(box, size), err_msg=f"unit {(y, x)}")
        result = prober.effective_receptive_field(layer, 0, y, x, 0)
        assert result.box == box
        reaches_padding |= min(box) < 0 or max(box) > size - 1
    assert reaches_padding, "the test must include units whose field reaches into the padding"


def test_dilated_convolution_box_bounds_a_field_with_holes():
    size = 11
    graph, model = _positive_net(
        [("c1", "conv2d", dict(in_channels=1, out_channels=1, kernel_size=3, dilation=3))], size
    )
    box, _ = theoretical_box(analyse(graph)["c1"].rf, 2, 1)
    assert box == (2, 1, 8, 7)  # 3 taps spaced 3 apart span 7 pixels
    support = _gradient_support(model, "c1", 0, 2, 1, torch.rand(4, 1, size, size) + 0.1)
    rows, cols = np.nonzero(support)
    assert (rows.min(), cols.min(), rows.max(), cols.max()) == box
    assert sorted(set(rows)) == [2, 5, 8] and sorted(set(cols)) == [1, 4, 7]


def test_effective_receptive_field_is_the_gradient_for_that_image():
    torch.manual_seed(3)
    graph = load_source("lenet5", size="teaching")
    model = build_module(graph)
    images = torch.randn(3, 1, 28, 28)
    result = Prober(model, graph, _batch(images)).effective_receptive_field(
        "features.c3", 4, 3, 6, 2
    )
    model.eval()
    x = images[2:3].clone().requires_grad_(True)
    out = model.run_until(x, names=["features.c3"])["features.c3"]
    (grad,) = torch.autograd.grad(out[0, 4, 3, 6], x)
    np.testing.assert_allclose(result.heatmap, grad[0].abs().sum(0).numpy(), rtol=1e-6)
    assert result.value == pytest.approx(float(out[0, 4, 3, 6].detach()), rel=1e-6)
    # c3: size 14, jump 2, padding 2 -> unit (3, 6) spans rows 4..17, columns 10..23.
    assert result.box == (4.0, 10.0, 17.0, 23.0)
    top, left, bottom, right = result.effective_box
    assert top >= 4 and left >= 10 and bottom <= 17 and right <= 23


def test_global_unit_sees_the_whole_image():
    graph = load_source("lenet5", size="teaching")
    result = Prober(build_module(graph), graph, _batch(torch.rand(1, 1, 28, 28)))
    rf = result.effective_receptive_field("classifier.output", 3, 0, 0)
    assert rf.global_field and rf.box == (0.0, 0.0, 27.0, 27.0)


def test_rf_by_depth_follows_the_analysis():
    graph = load_source("lenet5", size="teaching")
    points = rf_by_depth(analyse(graph))
    sizes = {p.name: p.size for p in points}
    # By hand: c1 5; pool 2x2 -> 5 + 1 = 6; c3 5x5 at jump 2 -> 6 + 4*2 = 14; s4 -> 14 + 2 = 16;
    # c5 5x5 at jump 4 -> 16 + 4*4 = 32.
    assert sizes["features.c1"] == 5
    assert sizes["features.s2"] == 6
    assert sizes["features.c3"] == 14
    assert sizes["features.s4"] == 16
    assert sizes["features.c5"] == 32
    assert [p.depth for p in points] == list(range(len(points)))
    assert "classifier.f6" not in sizes  # global: no local size


# --------------------------------------------------------------------------- Grad-CAM


def test_grad_cam_and_saliency_against_a_hand_computation():
    graph = ArchGraph("tiny")
    graph.add_input("input", (1, 5, 5))
    graph.add("conv", "conv2d", ["input"], in_channels=1, out_channels=2, kernel_size=3)
    graph.add("act", "relu", ["conv"])
    graph.add("gap", "adaptive_avg_pool2d", ["act"], output_size=1)
    graph.add("flat", "flatten", ["gap"])
    graph.add("fc", "linear", ["flat"], in_features=2, out_features=3)
    model = build_module(graph)
    rng = np.random.default_rng(7)
    k = rng.normal(size=(2, 3, 3)).astype(np.float32)
    kb = np.array([0.1, -0.2], dtype=np.float32)
    fw = rng.normal(size=(3, 2)).astype(np.float32)
    fb = np.array([0.0, 0.3, -0.1], dtype=np.float32)
    with torch.no_grad():
        model.get_submodule("_cnnviz_functions.conv").weight.copy_(torch.from_numpy(k[:, None]))
        model.get_submodule("_cnnviz_functions.conv").bias.copy_(torch.from_numpy(kb))
        model.get_submodule("_cnnviz_functions.fc").weight.copy_(torch.from_numpy(fw))
        model.get_submodule("_cnnviz_functions.fc").bias.copy_(torch.from_numpy(fb))
    x = rng.normal(size=(2, 1, 5, 5)).astype(np.float32)
    result = Prober(model, graph, _batch(torch.from_numpy(x), classes=3)).grad_cam("act")

    for n in range(2):
        # Forward by hand: valid 3x3 convolution (cross-correlation), ReLU, mean, linear.
        pre = np.zeros((2, 3, 3))
        for c, i, j in itertools.product(range(2), range(3), range(3)):
            pre[c, i, j] = (x[n, 0, i : i + 3, j : j + 3] * k[c]).sum() + kb[c]
        a = np.maximum(pre, 0)
        logits = fw @ a.mean(axis=(1, 2)) + fb
        cls = int(np.argmax(logits))
        assert result.predicted[n] == cls and result.class_index[n] == cls
        # d logit_cls / d A_k(i, j) = fw[cls, k] / 9 everywhere, so alpha_k = fw[cls, k] / 9.
        alpha = fw[cls] / 9.0
        cam = np.maximum((alpha[:, None, None] * a).sum(0), 0)
        np.testing.assert_allclose(result.cam_layer[n], cam, rtol=1e-5, atol=1e-6)
        # Saliency: d logit / d x(p) = sum over open units of alpha_k * kernel_k(p - unit).
        grad = np.zeros((5, 5))
        for c, i, j in itertools.product(range(2), range(3), range(3)):
            if pre[c, i, j] > 0:
                grad[i : i + 3, j : j + 3] += alpha[c] * k[c]
        sal = np.abs(grad)
        np.testing.assert_allclose(result.saliency[n], sal / sal.max(), rtol=1e-5, atol=1e-6)
        probs = np.exp(logits - logits.max())
        np.testing.assert_allclose(result.probabilities[n], probs / probs.sum(), rtol=1e-5)
    assert result.cam.shape == (2, 5, 5)
    assert np.all((result.cam >= 0) & (result.cam <= 1 + 1e-6))


def test_grad_cam_for_a_chosen_class_and_default_layer():
    graph = load_source("resnet18", size="teaching")
    analysis = analyse(graph)
    assert default_cam_layer(analysis) == "layer4.1.relu_1"
    prober = Prober(build_module(graph), graph, _batch(torch.randn(2, 3, 32, 32)), analysis)
    result = prober.grad_cam(class_index=4)
    assert list(result.class_index) == [4, 4]
    assert result.cam_layer.shape == (2, 4, 4) and result.cam.shape == (2, 32, 32)
    np.testing.assert_allclose(result.saliency, prober.saliency(class_index=4), rtol=1e-5)
    with pytest.raises(ProbeError, match="class 10 does not exist"):
        prober.grad_cam(class_index=10)


# --------------------------------------------------------------------------- confusion


class _TagModel(nn.Module):
    """Predicts the class written into pixel (0, 0) of each image."""

    def __init__(self) -> None:
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tag = (x[:, 0, 0, 0] * 255).round().long()
        return nn.functional.one_hot(tag, 3).float() * 4.0 + self.dummy


def test_confusion_matrix_against_a_hand_count():
    labels = torch.tensor([0, 0, 1, 1, 2, 2, 2])
    preds = torch.tensor([0, 1, 1, 1, 0, 2, 2])
    images = torch.zeros(7, 1, 4, 4, dtype=torch.uint8)
    images[:, 0, 0, 0] = preds.to(torch.uint8)
    split = InMemoryImageDataset(images, labels, (0.0,), (1.0,))
    data = DatasetBundle("tags", split, split, None, ["a", "b", "c"], (1, 4, 4), (0.0,), (1.0,))
    result = confusion_matrix(_TagModel(), data, batch_size=3)
    # Rows are true classes: a->a, a->b | b->b twice | c->a, c->c twice.
    np.testing.assert_array_equal(result.matrix, [[1, 1, 0], [0, 2, 0], [1, 0, 2]])
    assert result.accuracy == pytest.approx(5 / 7)
    assert sorted(result.indices.tolist()) == [1, 4]
    pairs = zip(result.true.tolist(), result.predicted.tolist(), strict=True)
    by_index = dict(zip(result.indices.tolist(), pairs, strict=True))
    assert by_index[1] == (0, 1) and by_index[4] == (2, 0)
    assert result.images.shape == (2, 4, 4, 1)
    assert result.confidence[0] == pytest.approx(np.exp(4) / (np.exp(4) + 2))
    limited = confusion_matrix(_TagModel(), data, max_examples=1)
    assert len(limited.indices) == 1 and limited.matrix.sum() == 7


# --------------------------------------------------------------------------- timeline, observer


def _bundle(step: int, nbytes: int) -> ProbeBundle:
    n = nbytes // 4
    maps = np.zeros((1, n, 1, 1), dtype=np.float32)
    stat = np.zeros(0, dtype=np.float32)
    act = ActivationSnapshot("x", step, np.zeros((1, 1, 1, 1), np.uint8), np.zeros(1), maps, False,
                             stat, stat, stat)  # fmt: skip
    return ProbeBundle(step, activations=act)


def test_timeline_is_bounded_and_thins_out_evenly():
    timeline = Timeline(max_snapshots=10, max_bytes=10_000)
    for step in range(0, 1000, 5):
        timeline.add(_bundle(step, 800))
        assert len(timeline) <= 10
        assert timeline.nbytes <= 10_000
        assert timeline.nbytes == sum(timeline[i].nbytes for i in range(len(timeline)))
    steps = timeline.steps
    assert steps[0] == 0 and steps[-1] == 995
    assert steps == sorted(steps)
    gaps = np.diff(steps[:-1])
    assert gaps.max() <= 2 * gaps.min()  # decimation keeps the spacing even
    # The byte bound binds before the count bound.
    small = Timeline(max_snapshots=100, max_bytes=4_000)
    for step in range(50):
        small.add(_bundle(step, 1000))
    assert small.nbytes <= 4_000 and len(small) <= 4


def test_observer_captures_every_n_steps_and_does_not_change_training(shapes):
    graph = load_source("lenet5", size="teaching")
    config = TrainConfig(batch_size=32, epochs=1, max_steps_per_epoch=12, report_every_n_steps=2)
    batch = ProbeBatch.from_dataset(shapes, n=4)

    torch.manual_seed(0)
    plain = build_module(graph)
    list(train(plain, shapes, config))

    torch.manual_seed(0)
    probed = build_module(graph)
    timeline = Timeline()
    observer = ProbeObserver(graph, batch, every_n_steps=4, timeline=timeline)
    results = []
    for report in train(probed, shapes, config):
        results.append((report.kind, report.global_step, observer(probed, report)))
    for a, b in zip(plain.parameters(), probed.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    captured = [(kind, step) for kind, step, r in results if r is not None]
    # First report (step 2) at once, then every 4 steps, then the epoch and final reports.
    assert captured == [("step", 2), ("step", 6), ("step", 10), ("epoch", 12), ("finished", 12)]
    bundle = results[0][2]
    assert bundle.activations.layer == "features.c1"
    assert bundle.first_filters is bundle.filters and bundle.filters.first_layer
    assert len(timeline) == 5
    final = results[-1][2]
    np.testing.assert_array_equal(
        final.first_filters.weights, probed.get_submodule("features.c1").weight.detach().numpy()
    )


def _report(step: int, kind: str = "step", elapsed_s: float | None = None) -> SimpleNamespace:
    """What the observer reads of a training report (``elapsed_s`` None: none given)."""
    report = SimpleNamespace(global_step=step, kind=kind, epoch=1)
    if elapsed_s is not None:
        report.elapsed_s = elapsed_s
    return report


def test_observer_layer_and_capture_requests_from_another_thread(shapes):
    graph = load_source("lenet5", size="teaching")
    model = build_module(graph)
    observer = ProbeObserver(graph, ProbeBatch.from_dataset(shapes, n=2), every_n_steps=100)
    assert observer(model, _report(1)) is not None  # the starting point
    assert observer(model, _report(2)) is None
    thread = threading.Thread(target=observer.set_layer, args=("features.act3",))
    thread.start()
    thread.join()
    bundle = observer(model, _report(3))
    assert bundle.activations.layer == "features.act3"
    assert bundle.filters.layer == "features.c3"
    assert bundle.first_filters.layer == "features.c1"
    observer.capture_now()
    assert observer(model, _report(4)) is not None
    assert observer(model, _report(5)) is None


def test_observer_waits_min_interval_between_periodic_captures(shapes, monkeypatch):
    graph = load_source("lenet5", size="teaching")
    model = build_module(graph)
    clock = [100.0]
    monkeypatch.setattr("cnnviz.core.probes.time.monotonic", lambda: clock[0])
    observer = ProbeObserver(
        graph, ProbeBatch.from_dataset(shapes, n=2), every_n_steps=2, min_interval_s=1.0
    )
    assert observer(model, _report(1)) is not None  # the starting point
    clock[0] += 0.3
    assert observer(model, _report(3)) is None  # two steps on, but only 0.3 s
    clock[0] += 0.3
    assert observer(model, _report(5)) is None
    assert observer(model, _report(6, kind="epoch")) is not None  # an epoch end: always
    clock[0] += 1.0
    assert observer(model, _report(7)) is None  # a second on, but one step
    assert observer(model, _report(8)) is not None  # both: due
    assert observer.captures == 3
    with pytest.raises(ProbeError):
        ProbeObserver(graph, ProbeBatch.from_dataset(shapes, n=2), min_interval_s=-1.0)


def test_observer_counts_the_interval_in_training_time(shapes, monkeypatch):
    graph = load_source("lenet5", size="teaching")
    model = build_module(graph)
    wall = [0.0]
    monkeypatch.setattr("cnnviz.core.probes.time.monotonic", lambda: wall[0])
    observer = ProbeObserver(
        graph, ProbeBatch.from_dataset(shapes, n=2), every_n_steps=1, min_interval_s=1.0
    )
    assert observer(model, _report(1, elapsed_s=0.1)) is not None
    wall[0] += 60.0  # a minute's pause: the wall clock runs, training time does not
    assert observer(model, _report(2, elapsed_s=0.2)) is None
    assert observer(model, _report(3, elapsed_s=0.9)) is None
    wall[0] += 0.1
    assert observer(model, _report(4, elapsed_s=1.15)) is not None  # a second of training since
    assert observer.captures == 2


def test_probe_batch_from_dataset_varies_classes(shapes):
    batch = ProbeBatch.from_dataset(shapes, n=10)
    assert sorted(batch.labels.tolist()) == list(range(10))
    assert batch.display.dtype == np.uint8 and batch.display.shape == (10, 28, 28, 1)
    expected = shapes.to_display(batch.inputs)
    np.testing.assert_array_equal(batch.display, expected)
    with pytest.raises(ProbeError):
        ProbeBatch.from_dataset(shapes, n=0)


def test_filter_snapshot_bytes():
    snap = FilterSnapshot("c", 0, np.zeros((6, 1, 5, 5), dtype=np.float32))
    assert snap.nbytes == 6 * 25 * 4
