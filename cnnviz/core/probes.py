"""Probes: what a network computes and has learnt, as numpy arrays for the views.

A :class:`Prober` looks at one model through a fixed *probe batch* (a few images, see
:class:`ProbeBatch`): the activations of any graph node by name (functional nodes such as
DenseNet's ``F.relu`` included), the filters of convolutions, the effective receptive field of
one unit (the gradient of that unit with respect to the input), Grad-CAM and saliency, and the
confusion matrix with the misclassified images of the validation split.

Every result is a frozen dataclass of numpy arrays and numbers, safe to hand to the interface
thread. Probes run in eval mode (batch norm uses its running statistics, dropout is off) and put
every module's mode back afterwards; only the gradient probes build an autograd graph, and no
probe keeps more than the probe batch's tensors.

During training, :class:`ProbeObserver` is called by the training thread after each report and
captures the chosen layer every N steps or when asked; the results (:class:`ProbeBundle`) go
into a bounded :class:`Timeline` that replays how the filters formed.

Receptive-field convention (:class:`cnnviz.core.ops.RF`): the centre of output unit ``i`` lies
on input pixel ``-padding + i*jump + (size-1)/2``, so the unit's theoretical field spans input
pixels ``-padding + i*jump`` to ``-padding + i*jump + size - 1``, which may reach into the
padding (negative indices, or indices past the image).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from cnnviz.core.analysis import Analysis, analyse
from cnnviz.core.build import FUNCTIONS_ATTR
from cnnviz.core.data import DatasetBundle
from cnnviz.core.graph import ArchGraph
from cnnviz.errors import CnnvizError

__all__ = [
    "ActivationSnapshot",
    "CamResult",
    "ConfusionResult",
    "FilterSnapshot",
    "ProbeBatch",
    "ProbeBundle",
    "ProbeError",
    "ProbeObserver",
    "Prober",
    "RFDepthPoint",
    "ReceptiveFieldResult",
    "Timeline",
    "capture_bundle",
    "confusion_matrix",
    "default_cam_layer",
    "eval_mode",
    "filter_layer_for",
    "first_conv_layer",
    "rf_by_depth",
    "theoretical_box",
]

DEFAULT_PROBE_IMAGES = 8
"""Images in a probe batch unless asked otherwise: enough variety, cheap to capture."""

_CONV_KINDS = ("conv2d",)
# Kinds that pass a convolution's channels through unchanged: walking up through them from a
# selected node finds the filters that made its channels.
_CHANNEL_PRESERVING = (
    "relu",
    "relu6",
    "leaky_relu",
    "elu",
    "gelu",
    "silu",
    "sigmoid",
    "tanh",
    "hardswish",
    "batch_norm2d",
    "dropout",
    "dropout2d",
    "identity",
)


class ProbeError(CnnvizError):
    """A probe cannot be taken: unknown layer, no convolution, a unit outside the map."""


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class ActivationSnapshot:
    """The output of one layer for the probe batch.

    Attributes:
        layer: Node name.
        step: Training step when it was taken (0 before training).
        images: The probe images, display-ready uint8 ``(N, H, W, C)``.
        labels: True class of each probe image, ``(N,)``.
        maps: The layer's output, float32 ``(N, C, h, w)``; a vector output ``(N, C)`` is
            stored as ``(N, C, 1, 1)`` with ``spatial`` False.
        spatial: True when the output is a feature map (it has a height and width).
        channel_mean: Mean of each channel over images and positions, ``(C,)``.
        channel_std: Standard deviation of each channel over images and positions, ``(C,)``.
        zero_fraction: Share of exact zeros per channel, ``(C,)``; 1.0 is a channel that never
            fires for these images (a dead ReLU).
        rf_size: Receptive field size per axis (y, x), or None where not local.
        rf_jump: Receptive field jump per axis, or None.
        rf_padding: Effective padding per axis, or None.
    """

    layer: str
    step: int
    images: np.ndarray
    labels: np.ndarray
    maps: np.ndarray
    spatial: bool
    channel_mean: np.ndarray
    channel_std: np.ndarray
    zero_fraction: np.ndarray
    rf_size: tuple[float, float] | None = None
    rf_jump: tuple[float, float] | None = None
    rf_padding: tuple[float, float] | None = None

    @property
    def channels(self) -> int:
        """Number of channels (or units of a vector)."""
        return int(self.maps.shape[1])

    @property
    def dead_channels(self) -> int:
        """Channels that are zero for every image and position."""
        return int((self.zero_fraction >= 1.0).sum())

    @property
    def nbytes(self) -> int:
        """Bytes held by the arrays that belong to this snapshot alone (not the images)."""
        return int(
            self.maps.nbytes
            + self.channel_mean.nbytes
            + self.channel_std.nbytes
            + self.zero_fraction.nbytes
        )


@dataclass(frozen=True)
class FilterSnapshot:
    """The weights of one convolution.

    Attributes:
        layer: Node name of the convolution.
        step: Training step when they were taken.
        weights: float32 ``(C_out, C_in / groups, kH, kW)``.
        groups: The convolution's groups.
        first_layer: True when the convolution reads the network input, so its input channels
            are the image's colour channels.
    """

    layer: str
    step: int
    weights: np.ndarray
    groups: int = 1
    first_layer: bool = False

    @property
    def nbytes(self) -> int:
        """Bytes of the weights."""
        return int(self.weights.nbytes)


@dataclass(frozen=True)
class ReceptiveFieldResult:
    """Theoretical and effective receptive field of one unit for one probe image.

    Attributes:
        layer: Node name.
        channel: Channel of the unit.
        unit: ``(y, x)`` of the unit in the layer's map.
        image_index: Which probe image.
        image: That image, uint8 ``(H, W, C)``.
        box: Theoretical field ``(top, left, bottom, right)`` in input pixels, inclusive; may
            reach outside the image (into the padding).
        global_field: True when the unit sees the whole input (after global pooling or a
            linear layer); ``box`` is then the whole image.
        heatmap: Effective field: ``|d unit / d input|`` summed over the input channels,
            float32 ``(H, W)``.
        effective_box: Bounding box ``(top, left, bottom, right)`` of the non-zero gradient,
            or None when the gradient is zero everywhere.
        value: The unit's activation.
    """

    layer: str
    channel: int
    unit: tuple[int, int]
    image_index: int
    image: np.ndarray
    box: tuple[float, float, float, float]
    global_field: bool
    heatmap: np.ndarray
    effective_box: tuple[int, int, int, int] | None
    value: float


@dataclass(frozen=True)
class CamResult:
    """Grad-CAM and saliency for the probe batch.

    Attributes:
        layer: The layer Grad-CAM weighs (normally the last feature map).
        class_index: Class explained for each image, ``(N,)``.
        predicted: Predicted class of each image, ``(N,)``.
        labels: True class of each image, ``(N,)``.
        probabilities: Softmax of the logits, ``(N, K)``.
        cam_layer: ``ReLU(sum_k alpha_k A^k)`` at the layer's resolution, ``(N, h, w)``, with
            ``alpha_k`` the spatial mean of ``d score / d A^k``.
        cam: ``cam_layer`` upsampled (bilinear) to the input size and divided by its maximum
            per image, in [0, 1], ``(N, H, W)``.
        saliency: ``max_c |d score / d input_c|`` divided by its maximum per image, ``(N, H, W)``.
        images: The probe images, uint8 ``(N, H, W, C)``.
        classes: Class names.
    """

    layer: str
    class_index: np.ndarray
    predicted: np.ndarray
    labels: np.ndarray
    probabilities: np.ndarray
    cam_layer: np.ndarray
    cam: np.ndarray
    saliency: np.ndarray
    images: np.ndarray
    classes: tuple[str, ...]


@dataclass(frozen=True)
class ConfusionResult:
    """Confusion matrix of a split and some of its misclassified images.

    Attributes:
        matrix: Counts ``(K, K)``; row = true class, column = predicted class.
        classes: Class names.
        images: Misclassified images, uint8 ``(M, H, W, C)``, most confident mistakes first.
        true: Their true classes, ``(M,)``.
        predicted: Their predicted classes, ``(M,)``.
        confidence: Softmax probability of the wrong prediction, ``(M,)``.
        indices: Their indices in the split, ``(M,)``.
        split: Which split was evaluated.
        step: Training step when it was computed.
    """

    matrix: np.ndarray
    classes: tuple[str, ...]
    images: np.ndarray
    true: np.ndarray
    predicted: np.ndarray
    confidence: np.ndarray
    indices: np.ndarray
    split: str = "val"
    step: int = 0

    @property
    def total(self) -> int:
        """Images evaluated."""
        return int(self.matrix.sum())

    @property
    def accuracy(self) -> float:
        """Share on the diagonal."""
        total = self.total
        return float(np.trace(self.matrix) / total) if total else float("nan")


@dataclass(frozen=True)
class RFDepthPoint:
    """Receptive-field size of one node, for the chart of size by depth.

    Attributes:
        name: Node name.
        kind: Operation kind.
        depth: Position among the nodes that have a local field (0 = first).
        size: Field size (largest axis), in input pixels.
        jump: Jump (largest axis).
    """

    name: str
    kind: str
    depth: int
    size: float
    jump: float


@dataclass(frozen=True)
class ProbeBundle:
    """What one capture during training produced.

    Attributes:
        step: Global training step.
        epoch: Epoch of that step.
        activations: The chosen layer's activations, or None.
        filters: Filters of the convolution behind the chosen layer, or None.
        first_filters: Filters of the first convolution (what the student watches form), or
            None when the network has none.
        confusion: A confusion matrix when one was asked for, else None.
        cam: Grad-CAM and saliency when asked for, else None.
        receptive_field: The receptive field of a unit when asked for, else None.
    """

    step: int
    epoch: int = 0
    activations: ActivationSnapshot | None = None
    filters: FilterSnapshot | None = None
    first_filters: FilterSnapshot | None = None
    confusion: ConfusionResult | None = None
    cam: CamResult | None = None
    receptive_field: ReceptiveFieldResult | None = None

    @property
    def nbytes(self) -> int:
        """Bytes held by this bundle alone (the shared probe images not counted)."""
        total = 0
        if self.activations is not None:
            total += self.activations.nbytes
        if self.filters is not None:
            total += self.filters.nbytes
        if self.first_filters is not None and self.first_filters is not self.filters:
            total += self.first_filters.nbytes
        if self.confusion is not None:
            total += self.confusion.images.nbytes + self.confusion.matrix.nbytes
        return total


# --------------------------------------------------------------------------- probe batch


@dataclass(frozen=True)
class ProbeBatch:
    """A fixed handful of images the probes look through.

    Attributes:
        inputs: Normalised float ``(N, C, H, W)`` tensor, as the model takes them.
        labels: ``(N,)`` int64 true classes (-1 where unknown, e.g. a file from disk).
        display: The same images, uint8 ``(N, H, W, C)`` for the views.
        classes: Class names.
    """

    inputs: torch.Tensor
    labels: np.ndarray
    display: np.ndarray
    classes: tuple[str, ...]

    def __len__(self) -> int:
        return int(self.inputs.shape[0])

    @staticmethod
    def from_dataset(
        data: DatasetBundle, n: int = DEFAULT_PROBE_IMAGES, split: str = "val", seed: int = 0
    ) -> ProbeBatch:
        """``n`` images of ``split``, taking the classes in turn so that the batch is varied.

        Raises:
            ProbeError: ``n`` is not positive or the split is empty.
        """
        if n < 1:
            raise ProbeError(f"a probe batch needs at least one image, got {n}")
        dataset = {"train": data.train, "val": data.val, "test": data.test}.get(split)
        if dataset is None or len(dataset) == 0:
            raise ProbeError(f"data set {data.name!r} has no images in split {split!r}")
        labels_all = getattr(dataset, "labels", None)
        rng = np.random.default_rng(seed)
        if isinstance(labels_all, torch.Tensor):
            labels_np = labels_all.numpy()
            by_class = [
                rng.permutation(np.flatnonzero(labels_np == k)) for k in np.unique(labels_np)
            ]
            chosen: list[int] = []
            depth = 0
            while len(chosen) < min(n, len(labels_np)):
                for members in by_class:
                    if depth < len(members) and len(chosen) < n:
                        chosen.append(int(members[depth]))
                depth += 1
        else:
            chosen = [int(i) for i in rng.permutation(len(dataset))[:n]]
        samples = [dataset[i] for i in chosen]
        inputs = torch.stack([s[0] for s in samples])
        labels = np.array([int(s[1]) for s in samples], dtype=np.int64)
        return ProbeBatch(
            inputs=inputs,
            labels=labels,
            display=np.ascontiguousarray(data.to_display(inputs)),
            classes=tuple(data.classes),
        )

    @staticmethod
    def from_files(paths: Sequence[str], data: DatasetBundle) -> ProbeBatch:
        """Images from disk, resized and normalised like ``data`` (labels unknown: -1).

        Raises:
            DatasetError: A file cannot be read (the message names it).
        """
        from cnnviz.core.data import _read_image

        channels, size, _ = data.input_shape
        raw = torch.stack([_read_image(p, size, channels) for p in paths]).to(torch.float32)
        mean = torch.tensor(data.mean).view(1, -1, 1, 1)
        std = torch.tensor(data.std).view(1, -1, 1, 1)
        inputs = (raw / 255.0 - mean) / std
        return ProbeBatch(
            inputs=inputs,
            labels=np.full(len(paths), -1, dtype=np.int64),
            display=np.ascontiguousarray(data.to_display(inputs)),
            classes=tuple(data.classes),
        )


# --------------------------------------------------------------------------- graph helpers


def theoretical_box(
    rf: Any, y: int, x: int, shape: Sequence[int] | None = None
) -> tuple[tuple[float, float, float, float], bool]:
    """The input pixels a unit ``(y, x)`` can see: ``(top, left, bottom, right)``, inclusive.

    Args:
        rf: The node's :class:`~cnnviz.core.ops.RF` (from the analysis).
        y: Row of the unit.
        x: Column of the unit.
        shape: Input ``(C, H, W)``; used for the whole-image box of a global field.

    Returns:
        The box and whether the field is global (the whole input).
    """
    if rf is None or not rf.is_local or rf.global_:
        if shape is None:
            raise ProbeError("this unit sees the whole input; the input shape is needed")
        return (0.0, 0.0, float(shape[-2] - 1), float(shape[-1] - 1)), True
    size, jump, pad = _axes(rf.size), _axes(rf.jump), _axes(rf.padding)
    top = -pad[0] + y * jump[0]
    left = -pad[1] + x * jump[1]
    return (float(top), float(left), float(top + size[0] - 1), float(left + size[1] - 1)), False


def _axes(values: Sequence[float]) -> tuple[float, float]:
    values = tuple(values)
    return (values[0], values[0]) if len(values) == 1 else (values[-2], values[-1])


def first_conv_layer(graph: ArchGraph) -> str | None:
    """The first convolution in execution order, or None."""
    for name in graph.topological_order():
        if graph[name].kind in _CONV_KINDS:
            return name
    return None


def filter_layer_for(graph: ArchGraph, name: str) -> str | None:
    """The convolution whose filters made the channels of ``name``, or None.

    A convolution is its own answer; from an activation, batch norm or dropout the walk goes up
    through single-input nodes that keep the channels.
    """
    for _ in range(8):
        if name not in graph:
            return None
        node = graph[name]
        if node.kind in _CONV_KINDS:
            return name
        if node.kind not in _CHANNEL_PRESERVING or len(node.inputs) != 1:
            return None
        name = node.inputs[0]
    return None


def default_cam_layer(analysis: Analysis) -> str | None:
    """The last node with a feature map larger than 1x1: the usual Grad-CAM layer."""
    best = None
    for name in analysis.order:
        shape = analysis.nodes[name].output_shape
        if (
            isinstance(shape, tuple)
            and len(shape) == 3
            and all(isinstance(v, int) for v in shape)
            and shape[1] * shape[2] > 1
            and analysis.nodes[name].kind != "input"
        ):
            best = name
    return best


def rf_by_depth(analysis: Analysis) -> list[RFDepthPoint]:
    """Receptive-field size of every node with a local field, in execution order."""
    points: list[RFDepthPoint] = []
    for name in analysis.order:
        node = analysis.nodes[name]
        rf = node.rf
        if node.kind == "input" or rf is None or not rf.is_local or rf.global_:
            continue
        points.append(
            RFDepthPoint(
                name=name,
                kind=node.kind,
                depth=len(points),
                size=float(max(rf.size)),
                jump=float(max(rf.jump)),
            )
        )
    return points


# --------------------------------------------------------------------------- the prober


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[None]:
    """Every module in eval mode inside; each module's own mode put back afterwards."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for module, training in modes:
            module.training = training


def _first_tensor(value: Any) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, (tuple, list)) and value and isinstance(value[0], torch.Tensor):
        return value[0]
    raise ProbeError(f"the layer gave {type(value).__name__}, not a tensor")


def _as_maps(t: torch.Tensor) -> tuple[np.ndarray, bool]:
    """A batch output as float32 ``(N, C, h, w)`` and whether it has a height and width."""
    a = t.detach().to("cpu", torch.float32).numpy()
    if a.ndim == 4:
        return np.ascontiguousarray(a), True
    if a.ndim == 2:
        return np.ascontiguousarray(a[:, :, None, None]), False
    if a.ndim == 3:
        return np.ascontiguousarray(a[:, :, None, :]), True
    if a.ndim == 5:  # 3D maps: show the middle depth slice
        return np.ascontiguousarray(a[:, :, a.shape[2] // 2]), True
    return np.ascontiguousarray(a.reshape(a.shape[0], -1, 1, 1)), False


class Prober:
    """Takes probes of one model through a fixed probe batch.

    Args:
        model: The network; a :class:`~cnnviz.core.build.GraphModel` reaches every node by
            name; another ``nn.Module`` only its submodules (by module path).
        graph: The graph the model was built from.
        batch: The probe images.
        analysis: The graph's analysis (computed when not given).
        cache_bytes: When the outputs of every node for the probe batch fit in this many bytes
            (by the analysis), :meth:`activations` keeps them from one forward pass until the
            weights change (any in-place update bumps a parameter's version counter), so that
            clicking through layers costs no further forward passes. 0 turns this off (right
            during training, where the weights change between captures).
    """

    def __init__(
        self,
        model: nn.Module,
        graph: ArchGraph,
        batch: ProbeBatch,
        analysis: Analysis | None = None,
        cache_bytes: int = 0,
    ) -> None:
        self.model = model
        self.graph = graph
        self.batch = batch
        self.analysis = analysis if analysis is not None else analyse(graph)
        self._inputs_on: tuple[torch.device, torch.Tensor] | None = None
        self.cache_bytes = cache_bytes
        self._cache: dict[str, Any] = {}
        self._cache_key: tuple[Any, ...] | None = None

    def _weights_key(self) -> tuple[Any, ...]:
        return (
            self._device(),
            tuple(t._version for t in self.model.parameters()),
            tuple(t._version for t in self.model.buffers()),
        )

    def _cached_run(self, layers: Sequence[str]) -> dict[str, Any] | None:
        """Outputs of ``layers`` from the cache, refilled by one full forward when stale."""
        fits = self.analysis.memory_bytes * len(self.batch) <= self.cache_bytes
        if not fits or not hasattr(self.model, "run_until"):
            return None
        key = self._weights_key()
        if key != self._cache_key:
            self._cache = {}
            self._cache_key = key
        missing = [layer for layer in layers if layer not in self._cache]
        if missing:
            # Run only as far as the deepest layer asked for, keeping everything on the way:
            # the first click after a weight change costs part of a forward pass.
            order = [n for n in self.analysis.order if n in self.graph]
            last = max(order.index(layer) for layer in missing)
            self._cache.update(self._run(order[: last + 1], self._inputs()))
        return {layer: self._cache[layer] for layer in layers}

    # ------------------------------------------------------------ helpers
    def _device(self) -> torch.device:
        for p in self.model.parameters():
            return p.device
        for b in self.model.buffers():
            return b.device
        return torch.device("cpu")

    def _inputs(self) -> torch.Tensor:
        device = self._device()
        if self._inputs_on is None or self._inputs_on[0] != device:
            self._inputs_on = (device, self.batch.inputs.to(device))
        return self._inputs_on[1]

    def _check_layer(self, layer: str) -> None:
        if layer not in self.graph:
            raise ProbeError(f"{self.graph.name} has no layer {layer!r}")

    def _run(self, layers: Sequence[str], inputs: torch.Tensor) -> dict[str, Any]:
        """Outputs of ``layers`` (graph nodes) for ``inputs``; runs no further than needed."""
        for layer in layers:
            self._check_layer(layer)
        run_until = getattr(self.model, "run_until", None)
        if run_until is not None:
            return run_until(inputs, names=layers)
        # A plain nn.Module: catch submodule outputs with forward hooks.
        out: dict[str, Any] = {}
        handles = []
        try:
            for layer in layers:
                path = self.graph[layer].module_path or layer
                try:
                    module = self.model.get_submodule(path)
                except AttributeError:
                    raise ProbeError(
                        f"{layer!r} is a function, not a module, in this model; rebuild it from "
                        "the graph to probe it"
                    ) from None
                handles.append(
                    module.register_forward_hook(lambda _m, _i, o, n=layer: out.__setitem__(n, o))
                )
            self.model(inputs)
        finally:
            for h in handles:
                h.remove()
        return out

    def _module_of(self, name: str) -> nn.Module:
        node = self.graph[name]
        # Nodes without a module path live in the built model's container of functions.
        paths = [node.module_path] if node.module_path else []
        paths += [f"{FUNCTIONS_ATTR}.{name.replace('.', '_')}", name]
        for path in paths:
            try:
                return self.model.get_submodule(path)
            except AttributeError:
                continue
        raise ProbeError(f"{name!r} has no module in this model")

    def _rf_of(self, layer: str) -> Any:
        node = self.analysis.nodes.get(layer)
        return None if node is None else node.rf

    # ------------------------------------------------------------ activations
    def activations(self, layers: Sequence[str], step: int = 0) -> dict[str, ActivationSnapshot]:
        """The outputs of ``layers`` for the probe batch.

        Args:
            layers: Node names.
            step: Training step to stamp the snapshots with.

        Raises:
            ProbeError: A layer is unknown or gives no tensor.
        """
        with torch.no_grad(), eval_mode(self.model):
            for layer in layers:
                self._check_layer(layer)
            outputs = self._cached_run(layers) if self.cache_bytes else None
            if outputs is None:
                outputs = self._run(list(layers), self._inputs())
            result = {}
            for layer in layers:
                maps, spatial = _as_maps(_first_tensor(outputs[layer]))
                result[layer] = self._snapshot(layer, maps, spatial, step)
            return result

    def activation(self, layer: str, step: int = 0) -> ActivationSnapshot:
        """The output of one layer for the probe batch (see :meth:`activations`)."""
        return self.activations([layer], step)[layer]

    def _snapshot(
        self, layer: str, maps: np.ndarray, spatial: bool, step: int
    ) -> ActivationSnapshot:
        per_channel = maps.transpose(1, 0, 2, 3).reshape(maps.shape[1], -1)
        rf = self._rf_of(layer)
        local = rf is not None and rf.is_local and not rf.global_ and spatial
        return ActivationSnapshot(
            layer=layer,
            step=step,
            images=self.batch.display,
            labels=self.batch.labels,
            maps=maps,
            spatial=spatial,
            channel_mean=per_channel.mean(axis=1, dtype=np.float64).astype(np.float32),
            channel_std=per_channel.std(axis=1, dtype=np.float64).astype(np.float32),
            zero_fraction=(per_channel == 0).mean(axis=1).astype(np.float32),
            rf_size=_axes(rf.size) if local else None,
            rf_jump=_axes(rf.jump) if local else None,
            rf_padding=_axes(rf.padding) if local else None,
        )

    # ------------------------------------------------------------ filters
    def filters(self, layer: str, step: int = 0) -> FilterSnapshot:
        """The weights of the convolution behind ``layer`` (see :func:`filter_layer_for`).

        Raises:
            ProbeError: No convolution made this layer's channels.
        """
        self._check_layer(layer)
        conv = filter_layer_for(self.graph, layer)
        if conv is None:
            raise ProbeError(f"{layer!r} is not made by a convolution; it has no filters")
        module = self._module_of(conv)
        weight = getattr(module, "weight", None)
        if not isinstance(weight, torch.Tensor):
            raise ProbeError(f"{conv!r} has no weights")
        with torch.no_grad():
            w = weight.detach().to("cpu", torch.float32).numpy().copy()
        node = self.graph[conv]
        first = any(self.graph[i].kind == "input" for i in node.inputs if i in self.graph)
        return FilterSnapshot(
            layer=conv,
            step=step,
            weights=w,
            groups=int(getattr(module, "groups", 1)),
            first_layer=first,
        )

    # ------------------------------------------------------------ receptive field
    def effective_receptive_field(
        self, layer: str, channel: int, y: int, x: int, image_index: int = 0
    ) -> ReceptiveFieldResult:
        """Theoretical field of unit ``(channel, y, x)`` and its gradient w.r.t. the input.

        Raises:
            ProbeError: Unknown layer, or the unit lies outside the layer's output.
        """
        self._check_layer(layer)
        if not 0 <= image_index < len(self.batch):
            raise ProbeError(f"probe image {image_index} does not exist (0..{len(self.batch) - 1})")
        image = self._inputs()[image_index : image_index + 1].detach().clone().requires_grad_(True)
        with torch.enable_grad(), eval_mode(self.model):
            out = _first_tensor(self._run([layer], image)[layer])
            if out.ndim == 2:
                out = out[:, :, None, None]
            elif out.ndim == 3:
                out = out[:, :, None, :]
            _, c, h, w = out.shape
            if not (0 <= channel < c and 0 <= y < h and 0 <= x < w):
                raise ProbeError(
                    f"unit (channel {channel}, y {y}, x {x}) is outside {layer!r}, whose output "
                    f"is {c} x {h} x {w}"
                )
            unit = out[0, channel, y, x]
            if not unit.requires_grad:
                grad = torch.zeros_like(image)
            else:
                (grad,) = torch.autograd.grad(unit, image, allow_unused=True)
                if grad is None:
                    grad = torch.zeros_like(image)
            value = float(unit.detach())
        heat = grad[0].abs().sum(0).to("cpu", torch.float32).numpy()
        nz_rows = np.flatnonzero(heat.any(axis=1))
        nz_cols = np.flatnonzero(heat.any(axis=0))
        effective = (
            (int(nz_rows[0]), int(nz_cols[0]), int(nz_rows[-1]), int(nz_cols[-1]))
            if nz_rows.size
            else None
        )
        box, is_global = theoretical_box(
            self._rf_of(layer), y, x, tuple(self.batch.inputs.shape[1:])
        )
        return ReceptiveFieldResult(
            layer=layer,
            channel=channel,
            unit=(y, x),
            image_index=image_index,
            image=self.batch.display[image_index],
            box=box,
            global_field=is_global,
            heatmap=heat,
            effective_box=effective,
            value=value,
        )

    # ------------------------------------------------------------ Grad-CAM, saliency
    def _classes_for(self, logits: torch.Tensor, class_index: int | None) -> torch.Tensor:
        if class_index is None:
            return logits.detach().argmax(1)
        k = logits.shape[1]
        if not 0 <= class_index < k:
            raise ProbeError(f"class {class_index} does not exist (the model has {k} outputs)")
        return torch.full((logits.shape[0],), class_index, dtype=torch.int64, device=logits.device)

    def grad_cam(self, layer: str | None = None, class_index: int | None = None) -> CamResult:
        """Grad-CAM (Selvaraju et al. 2017) of ``layer`` and saliency, for every probe image.

        Args:
            layer: Feature-map node to weigh; default :func:`default_cam_layer`.
            class_index: Class to explain for every image; None explains each image's own
                predicted class.

        Raises:
            ProbeError: No feature map to weigh, or an unknown class.
        """
        layer = layer or default_cam_layer(self.analysis)
        if layer is None:
            raise ProbeError(f"{self.graph.name} has no feature map for Grad-CAM")
        self._check_layer(layer)
        inputs = self._inputs().detach().clone().requires_grad_(True)
        output_name = self.graph.outputs[0] if self.graph.outputs else self.analysis.order[-1]
        with torch.enable_grad(), eval_mode(self.model):
            outs = self._run([layer, output_name], inputs)
            acts = _first_tensor(outs[layer])
            logits = _first_tensor(outs[output_name])
            if acts.ndim != 4:
                raise ProbeError(f"{layer!r} gives no feature map (shape {tuple(acts.shape)})")
            if logits.ndim != 2:
                raise ProbeError(f"the model output has shape {tuple(logits.shape)}, not logits")
            chosen = self._classes_for(logits, class_index)
            # Samples are independent in eval mode, so one backward of the sum gives every
            # image's own gradient.
            score = logits.gather(1, chosen[:, None]).sum()
            grad_acts, grad_in = torch.autograd.grad(score, [acts, inputs], allow_unused=True)
        if grad_acts is None:
            grad_acts = torch.zeros_like(acts)
        if grad_in is None:
            grad_in = torch.zeros_like(inputs)
        with torch.no_grad():
            alpha = grad_acts.mean(dim=(2, 3), keepdim=True)
            cam_layer = torch.relu((alpha * acts.detach()).sum(1))
            up = nn.functional.interpolate(
                cam_layer[:, None], size=inputs.shape[-2:], mode="bilinear", align_corners=False
            )[:, 0]
            sal = grad_in.abs().amax(1)
            probs = torch.softmax(logits.detach().float(), 1)
        return CamResult(
            layer=layer,
            class_index=chosen.cpu().numpy(),
            predicted=logits.detach().argmax(1).cpu().numpy(),
            labels=self.batch.labels,
            probabilities=probs.cpu().numpy(),
            cam_layer=cam_layer.to("cpu", torch.float32).numpy(),
            cam=_unit_max(up.to("cpu", torch.float32).numpy()),
            saliency=_unit_max(sal.to("cpu", torch.float32).numpy()),
            images=self.batch.display,
            classes=self.batch.classes,
        )

    def saliency(self, class_index: int | None = None) -> np.ndarray:
        """``max_c |d score / d input_c|`` per probe image, scaled to a maximum of 1."""
        inputs = self._inputs().detach().clone().requires_grad_(True)
        with torch.enable_grad(), eval_mode(self.model):
            logits = _first_tensor(self.model(inputs))
            chosen = self._classes_for(logits, class_index)
            (grad,) = torch.autograd.grad(logits.gather(1, chosen[:, None]).sum(), inputs)
        return _unit_max(grad.abs().amax(1).to("cpu", torch.float32).numpy())

    # ------------------------------------------------------------ confusion
    def confusion(
        self,
        data: DatasetBundle,
        split: str = "val",
        max_images: int = 2000,
        max_examples: int = 32,
        batch_size: int = 256,
        step: int = 0,
    ) -> ConfusionResult:
        """Confusion matrix over (the first ``max_images`` of) ``split``.

        Only one batch of images is held at a time, plus the ``max_examples`` most confident
        mistakes.
        """
        return confusion_matrix(
            self.model, data, split, max_images, max_examples, batch_size, step, self._device()
        )


def _unit_max(a: np.ndarray) -> np.ndarray:
    peak = a.reshape(a.shape[0], -1).max(axis=1).reshape(-1, *([1] * (a.ndim - 1)))
    return np.where(peak > 0, a / np.where(peak > 0, peak, 1.0), 0.0).astype(np.float32)


def confusion_matrix(
    model: nn.Module,
    data: DatasetBundle,
    split: str = "val",
    max_images: int = 2000,
    max_examples: int = 32,
    batch_size: int = 256,
    step: int = 0,
    device: torch.device | None = None,
) -> ConfusionResult:
    """Counts of (true, predicted) over ``split`` and the most confident mistakes.

    Raises:
        ProbeError: The split does not exist or the model gives no logits.
    """
    dataset = {"train": data.train, "val": data.val, "test": data.test}.get(split)
    if dataset is None:
        raise ProbeError(f"data set {data.name!r} has no split {split!r}")
    if device is None:
        device = next((p.device for p in model.parameters()), torch.device("cpu"))
    k = data.num_classes
    matrix = np.zeros((k, k), dtype=np.int64)
    kept: list[tuple[float, int, int, int, torch.Tensor]] = []
    n = min(len(dataset), max_images)
    with torch.no_grad(), eval_mode(model):
        for start in range(0, n, batch_size):
            idx = list(range(start, min(n, start + batch_size)))
            if hasattr(dataset, "batch"):
                images, labels = dataset.batch(idx)
            else:
                samples = [dataset[i] for i in idx]
                images = torch.stack([s[0] for s in samples])
                labels = torch.tensor([int(s[1]) for s in samples])
            logits = _first_tensor(model(images.to(device))).float().cpu()
            if logits.ndim != 2 or logits.shape[1] != k:
                raise ProbeError(
                    f"the model gives outputs of shape {tuple(logits.shape)}; the confusion "
                    f"matrix needs {k} class scores per image"
                )
            probs = torch.softmax(logits, 1)
            conf, pred = probs.max(1)
            np.add.at(matrix, (labels.numpy(), pred.numpy()), 1)
            wrong = torch.nonzero(pred != labels).flatten().tolist()
            for j in wrong:
                kept.append((float(conf[j]), idx[j], int(labels[j]), int(pred[j]), images[j]))
            kept.sort(key=lambda t: -t[0])
            del kept[max_examples:]
    if kept:
        imgs = data.to_display(torch.stack([t[4] for t in kept]))
    else:
        c, h, w = data.input_shape
        imgs = np.zeros((0, h, w, c), dtype=np.uint8)
    return ConfusionResult(
        matrix=matrix,
        classes=tuple(data.classes),
        images=np.ascontiguousarray(imgs),
        true=np.array([t[2] for t in kept], dtype=np.int64),
        predicted=np.array([t[3] for t in kept], dtype=np.int64),
        confidence=np.array([t[0] for t in kept], dtype=np.float32),
        indices=np.array([t[1] for t in kept], dtype=np.int64),
        split=split,
        step=step,
    )


# --------------------------------------------------------------------------- training


class Timeline:
    """Snapshots taken during training, bounded in count and bytes.

    Every added snapshot gets a running number. Kept are those whose number is a multiple of a
    stride, plus the newest; when a bound would be passed the stride doubles, dropping every
    second kept snapshot. The timeline so thins out evenly over the whole run instead of
    forgetting its beginning: the filters' first steps stay in view.

    Args:
        max_snapshots: Most snapshots kept (at least 2).
        max_bytes: Most bytes kept over all snapshots (the shared probe images not counted).
    """

    def __init__(self, max_snapshots: int = 60, max_bytes: int = 64 * 2**20) -> None:
        if max_snapshots < 2:
            raise ProbeError(f"a timeline keeps at least 2 snapshots, not {max_snapshots}")
        self.max_snapshots = max_snapshots
        self.max_bytes = max_bytes
        self._items: list[tuple[int, ProbeBundle]] = []
        self._count = 0
        self._stride = 1
        self._bytes = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    def __getitem__(self, index: int) -> ProbeBundle:
        return self._items[index][1]

    @property
    def nbytes(self) -> int:
        """Bytes held now."""
        return self._bytes

    @property
    def steps(self) -> list[int]:
        """Training step of each snapshot, oldest first."""
        return [b.step for _, b in self._items]

    def clear(self) -> None:
        """Forget every snapshot."""
        with self._lock:
            self._items = []
            self._count = 0
            self._stride = 1
            self._bytes = 0

    def add(self, bundle: ProbeBundle) -> None:
        """Keep ``bundle``, thinning older snapshots where a bound would be passed."""
        with self._lock:
            # Answers to one-off requests are not part of the replay.
            if bundle.confusion or bundle.cam or bundle.receptive_field:
                bundle = ProbeBundle(
                    bundle.step,
                    bundle.epoch,
                    bundle.activations,
                    bundle.filters,
                    bundle.first_filters,
                )
            if bundle.nbytes > self.max_bytes:
                return
            number = self._count
            self._count += 1
            if self._items and self._items[-1][0] % self._stride:
                self._items.pop()  # the previous newest was kept only for being the newest
            self._items.append((number, bundle))
            while self._over():
                if self._stride > self._count:
                    self._items.pop(0)  # only the first and the newest are left
                    continue
                self._stride *= 2
                last = self._items[-1]
                self._items = [it for it in self._items[:-1] if it[0] % self._stride == 0]
                self._items.append(last)
                self._bytes = sum(b.nbytes for _, b in self._items)

    def _over(self) -> bool:
        self._bytes = sum(b.nbytes for _, b in self._items)
        return len(self._items) > self.max_snapshots or self._bytes > self.max_bytes


class ProbeObserver:
    """Captures probes during training; use as the training panel's observer.

    Called in the training thread after each report as ``observer(model, report)``, it captures
    the chosen layer's activations and filters (and the first layer's filters) every
    ``every_n_steps`` steps (and at least ``min_interval_s`` apart), at every epoch end, and at
    the next report after :meth:`capture_now`. The captures run on the probe batch only, in
    eval mode, without gradients, while training waits: the training batch is never copied.

    :meth:`set_layer`, :meth:`capture_now` and :meth:`request_confusion` may be called from
    any thread.

    Args:
        graph: The graph the trained model was built from.
        batch: The probe images.
        analysis: The graph's analysis (computed when not given).
        layer: The layer to capture; None for the first convolution.
        every_n_steps: Steps between two captures.
        min_interval_s: Seconds at least between two periodic captures: a small net makes
            many steps a second, and a capture shown more often than a person can follow
            only takes time from training (and from the GUI thread that paints it). Counted
            in training time (the report's ``elapsed_s``, pauses left out) where reports
            carry it, else on the wall clock.
        data: The data set, for a confusion matrix when one is asked for.
        timeline: Where each capture is also kept, or None.
    """

    def __init__(
        self,
        graph: ArchGraph,
        batch: ProbeBatch,
        analysis: Analysis | None = None,
        layer: str | None = None,
        every_n_steps: int = 20,
        data: DatasetBundle | None = None,
        timeline: Timeline | None = None,
        min_interval_s: float = 0.0,
    ) -> None:
        if every_n_steps < 1:
            raise ProbeError(f"every_n_steps must be at least 1, got {every_n_steps}")
        if not min_interval_s >= 0:
            raise ProbeError(f"min_interval_s must be at least 0, got {min_interval_s}")
        self.min_interval_s = min_interval_s
        self._last_time = -math.inf
        self.graph = graph
        self.batch = batch
        self.analysis = analysis if analysis is not None else analyse(graph)
        self.every_n_steps = every_n_steps
        self.data = data
        self.timeline = timeline
        self.first_conv = first_conv_layer(graph)
        self._lock = threading.Lock()
        self._layer = layer or self.first_conv or default_cam_layer(self.analysis)
        self._now = True  # the first report shows the starting point
        self._confusion = False
        self._cam: tuple[int | None] | None = None
        self._rf: tuple[str, int, int, int, int] | None = None
        self._last_step: int | None = None
        self._prober: Prober | None = None
        self.captures = 0

    @property
    def layer(self) -> str | None:
        """The layer being captured."""
        with self._lock:
            return self._layer

    def set_layer(self, layer: str | None) -> None:
        """Capture ``layer`` from now on (and at the next report); None keeps the current one."""
        with self._lock:
            if layer and layer in self.graph and layer != self._layer:
                self._layer = layer
                self._now = True

    def capture_now(self) -> None:
        """Capture at the next report, whatever the step."""
        with self._lock:
            self._now = True

    def request_confusion(self) -> None:
        """Compute a confusion matrix at the next report (needs ``data``)."""
        with self._lock:
            self._confusion = True
            self._now = True

    def request_cam(self, class_index: int | None = None) -> None:
        """Compute Grad-CAM and saliency at the next report (None: predicted classes)."""
        with self._lock:
            self._cam = (class_index,)
            self._now = True

    def request_receptive_field(
        self, layer: str, channel: int, y: int, x: int, image_index: int = 0
    ) -> None:
        """Compute the receptive field of one unit at the next report."""
        with self._lock:
            self._rf = (layer, channel, y, x, image_index)
            self._now = True

    def __call__(self, model: nn.Module, report: Any) -> ProbeBundle | None:
        """Capture when due; returns the bundle, or None when nothing was due."""
        step = int(getattr(report, "global_step", 0))
        kind = getattr(report, "kind", "step")
        # Training time where the report has it: a paused run has nothing new to show, so
        # the first step after a pause is not due merely because the pause was long.
        now = getattr(report, "elapsed_s", None)
        if now is None:
            now = time.monotonic()
        with self._lock:
            due = (
                self._now
                or kind != "step"
                or self._last_step is None
                or (
                    step - self._last_step >= self.every_n_steps
                    and now - self._last_time >= self.min_interval_s
                )
            )
            if not due:
                return None
            self._last_time = now
            layer = self._layer
            confusion = self._confusion and self.data is not None
            cam, rf = self._cam, self._rf
            self._now = False
            self._confusion = False
            self._cam = self._rf = None
            self._last_step = step
        if self._prober is None or self._prober.model is not model:
            self._prober = Prober(model, self.graph, self.batch, self.analysis)
        bundle = capture_bundle(
            self._prober,
            layer,
            self.first_conv,
            step,
            int(getattr(report, "epoch", 0)),
            self.data if confusion else None,
        )
        extra: dict[str, Any] = {}
        # A failed one-off request must not stop training: it is reported as missing.
        if cam is not None:
            with contextlib.suppress(ProbeError):
                extra["cam"] = self._prober.grad_cam(None, cam[0])
        if rf is not None:
            with contextlib.suppress(ProbeError):
                extra["receptive_field"] = self._prober.effective_receptive_field(*rf)
        if extra:
            bundle = dataclasses.replace(bundle, **extra)
        self.captures += 1
        if self.timeline is not None:
            self.timeline.add(bundle)
        return bundle


def capture_bundle(
    prober: Prober,
    layer: str | None,
    first_conv: str | None,
    step: int,
    epoch: int = 0,
    data: DatasetBundle | None = None,
) -> ProbeBundle:
    """Activations and filters of ``layer`` and the first convolution's filters, at once."""
    activations = prober.activation(layer, step) if layer else None
    filters = None
    conv = filter_layer_for(prober.graph, layer) if layer else None
    if conv is not None:
        filters = prober.filters(conv, step)
    first = None
    if first_conv is not None:
        first = filters if conv == first_conv else prober.filters(first_conv, step)
    confusion = prober.confusion(data, step=step) if data is not None else None
    return ProbeBundle(step, epoch, activations, filters, first, confusion)
