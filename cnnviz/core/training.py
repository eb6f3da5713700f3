"""Training: the configuration, the loop as a generator of reports, stop and pause flags.

:func:`train` is a plain generator. It yields a :class:`Report` (plain numbers, no tensors) every
``report_every_n_steps`` batches, one at the end of every epoch (with validation loss and
accuracy), and a last one whose kind is ``"finished"``, ``"stopped"`` or ``"failed"``. A
:class:`TrainControl` passed in from another thread stops or pauses it; both flags are checked
before every batch, so a stop takes effect within one batch and a pause blocks (on an
``Event``, no spinning) before the next one.

Threads. The GUI runs :func:`train` in a ``QThread``. PyTorch's CPU kernels run on GNU
OpenMP, which gives every thread that starts a parallel region its *own* team of helper
threads. Idle helpers spin for a while (300,000 turns) waiting for the next region, which for
the small layers of a teaching net comes within microseconds; but when libgomp manages more
threads than there are CPUs it cuts the spin to 100 turns (libgomp manual, ``GOMP_SPINCOUNT``),
so every layer pays a futex wake-up. Once the GUI thread has run a single multi-threaded torch
operation (shape inference, a probe), its team stays alive, and on a 2-core machine a training
thread's team is over the limit. Measured on the 2-core reference machine (images/s of a
thread against the main thread, same model, batch and process):

* after the main thread ran torch work: 0.62 to 0.81 for LeNet-5 (batch 64), 0.85 to 0.89
  for the teaching ResNet-18 (batch 128); 1.0 (within noise) for LeNet-5 in a process whose
  main thread never ran a parallel region;
* ``OMP_WAIT_POLICY=PASSIVE`` (set before torch loads): thread 1.04, but only because the
  main thread drops to the same speed (-20 to -40 %); ``ACTIVE``: 0.45 (the main thread's idle
  team spins forever on the second core); ``GOMP_SPINCOUNT`` cannot lift the 100-turn limit;
* one torch thread in the worker: 0.68 to 0.86 for LeNet-5, and about half the speed for
  ResNet-18, which does use two cores.

The fix cnnviz adopts: keep the GUI thread single-threaded for torch from the start, so that
the training thread's team is the only one. Call :func:`configure_main_thread` once in the GUI
thread before any torch work; :func:`train` calls :func:`configure_worker_thread` itself, which
gives the training thread torch's default thread count back (or ``TrainConfig.num_threads``)
and restores the previous count when training ends. ``benchmarks/training.py`` (variants
in separate processes taking turns slot by slot, median of per-slot ratios to a bare loop in
the main thread) measured the trainer in a worker thread at 1.01 of the bare loop for LeNet-5
(batch 64) and 1.00 for the teaching ResNet-18 (batch 128) with the fix, against 0.65 and 0.85
without it.

A worker process (spawn, reports over a queue) would avoid the problem as well, but it costs
seconds of start-up (importing torch), needs the model and data to be picklable (a user's
model loaded from a file often is not) and puts the trained weights in another process, away
from the probes that show them; so cnnviz trains in a thread.

Weights on a NaN loss: before every optimizer step whose loss was finite, the parameters and
floating-point buffers are copied into preallocated tensors (one ``torch._foreach_copy_``:
measured at 0.3 % of a LeNet-5 step and 0.1 % of a teaching ResNet-18 step on the CPU; it
doubles the memory of the weights, not of the activations). When a loss is not finite, those
weights, the last ones that gave a finite loss, are put back.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import math
import os
import random
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from cnnviz.core.data import DatasetBundle
from cnnviz.core.device import pick_device
from cnnviz.errors import CnnvizError

__all__ = [
    "DEVICES",
    "INITS",
    "OPTIMIZERS",
    "REPORT_KINDS",
    "SCHEDULES",
    "Report",
    "TrainConfig",
    "TrainConfigError",
    "TrainControl",
    "configure_main_thread",
    "configure_worker_thread",
    "init_weights",
    "load_checkpoint",
    "metrics_to_csv",
    "save_checkpoint",
    "seed_everything",
    "train",
    "training_loss",
]

OPTIMIZERS: tuple[str, ...] = ("sgd", "adam", "adamw")
SCHEDULES: tuple[str, ...] = ("none", "step", "cosine", "one-cycle")
INITS: tuple[str, ...] = ("default", "xavier", "he", "zeros")
DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda", "mps")
REPORT_KINDS: tuple[str, ...] = ("step", "epoch", "finished", "stopped", "failed")

# The intra-op thread count torch chose for this process (cores, or OMP_NUM_THREADS), read
# before configure_main_thread() can lower it, so that training threads get it back.
_DEFAULT_THREADS: int = torch.get_num_threads()


class TrainConfigError(CnnvizError):
    """A training hyper-parameter is out of range; the message names it and the range."""


# --------------------------------------------------------------------------- threads


def configure_main_thread() -> None:
    """Make torch single-threaded in the calling (GUI) thread; call once, before torch work.

    OpenMP gives every thread that runs a parallel region its own team of helper threads,
    and lets idle helpers spin only while there are no more of them than CPUs. A GUI thread
    that never runs a parallel region keeps that budget free for the training thread, which
    then trains as fast as a plain loop in the main thread (see the module's documentation).
    Torch work in the GUI thread (analysis, probes of one batch) is small enough for one core.
    Called after the GUI thread has already run multi-threaded torch work it comes too late:
    libgomp keeps that thread's team until the process ends.
    """
    torch.set_num_threads(1)


def configure_worker_thread(num_threads: int | None = None) -> int:
    """Give the calling thread ``num_threads`` torch threads (default: torch's own default).

    Torch's OpenMP thread count is per thread, and a new thread inherits the last value set
    anywhere in the process, such as the 1 of :func:`configure_main_thread`. :func:`train`
    calls this at its start.

    Returns:
        The thread count now in force in the calling thread.
    """
    torch.set_num_threads(num_threads or _DEFAULT_THREADS)
    return torch.get_num_threads()


# --------------------------------------------------------------------------- configuration


def _check(ok: bool, field: str, allowed: str, value: Any) -> None:
    if not ok:
        raise TrainConfigError(f"{field} must be {allowed}, got {value!r}")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of one training run, checked when made.

    Attributes:
        optimizer: ``"sgd"``, ``"adam"`` or ``"adamw"``.
        lr: Learning rate (the peak rate for ``"one-cycle"``), > 0.
        momentum: SGD momentum in [0, 1); ignored by Adam and AdamW.
        nesterov: Nesterov momentum (SGD with momentum > 0 only).
        weight_decay: L2 penalty (decoupled for AdamW), >= 0.
        schedule: ``"none"``, ``"step"`` (multiply by ``gamma`` every ``step_size`` epochs),
            ``"cosine"`` (down to 0 over the run) or ``"one-cycle"`` (warm up to ``lr``, then
            anneal); the rate changes after every batch.
        step_size: Epochs between two decays of the ``"step"`` schedule, >= 1.
        gamma: Factor of the ``"step"`` schedule, in (0, 1].
        init: Weight initialisation of convolutions and linear layers when training begins:
            ``"default"`` keeps the weights as they are (so a second run continues), ``"xavier"``
            (Glorot uniform), ``"he"`` (Kaiming normal, for ReLU), ``"zeros"`` (every unit of a
            layer computes the same thing and gets the same gradient: nothing is learnt).
        batch_size: Images per batch, >= 1.
        epochs: Passes over the training split, >= 1.
        seed: Seeds torch, numpy, Python's ``random`` and the shuffling, so that a run is
            repeatable (on the same device and thread count); None for a fresh random seed.
        aux_weight: Weight of each auxiliary loss of a model that returns several outputs in
            training mode (GoogLeNet's ``(logits, aux2, aux1)``), >= 0. Used in training only:
            in eval mode such models return their main logits alone.
        device: ``"auto"`` (CUDA, else MPS, else CPU), ``"cpu"``, ``"cuda"`` or ``"mps"``.
        report_every_n_steps: Batches between two ``"step"`` reports, >= 1.
        checkpoint_path: Where to save a checkpoint at the end of every epoch, or None.
        num_threads: Torch CPU threads in the training thread; None for torch's default.
        max_steps_per_epoch: Stop an epoch after this many batches (short demonstrations,
            tests), or None for the whole training split.
    """

    optimizer: str = "adam"
    lr: float = 1e-3
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 0.0
    schedule: str = "none"
    step_size: int = 1
    gamma: float = 0.1
    init: str = "default"
    batch_size: int = 64
    epochs: int = 1
    seed: int | None = 0
    aux_weight: float = 0.3
    device: str = "auto"
    report_every_n_steps: int = 10
    checkpoint_path: str | None = None
    num_threads: int | None = None
    max_steps_per_epoch: int | None = None

    def __post_init__(self) -> None:
        _check(self.optimizer in OPTIMIZERS, "optimizer", f"one of {OPTIMIZERS}", self.optimizer)
        _check(
            _is_number(self.lr) and math.isfinite(self.lr) and self.lr > 0,
            "lr",
            "a finite number > 0",
            self.lr,
        )
        _check(
            _is_number(self.momentum) and 0 <= self.momentum < 1,
            "momentum",
            "in [0, 1)",
            self.momentum,
        )
        _check(isinstance(self.nesterov, bool), "nesterov", "True or False", self.nesterov)
        if self.nesterov:
            _check(
                self.optimizer == "sgd" and self.momentum > 0,
                "nesterov",
                "False unless optimizer is 'sgd' with momentum > 0",
                self.nesterov,
            )
        _check(
            _is_number(self.weight_decay)
            and math.isfinite(self.weight_decay)
            and self.weight_decay >= 0,
            "weight_decay",
            "a finite number >= 0",
            self.weight_decay,
        )
        _check(self.schedule in SCHEDULES, "schedule", f"one of {SCHEDULES}", self.schedule)
        _check(
            _is_int(self.step_size) and self.step_size >= 1,
            "step_size",
            "an integer >= 1",
            self.step_size,
        )
        _check(_is_number(self.gamma) and 0 < self.gamma <= 1, "gamma", "in (0, 1]", self.gamma)
        _check(self.init in INITS, "init", f"one of {INITS}", self.init)
        _check(
            _is_int(self.batch_size) and self.batch_size >= 1,
            "batch_size",
            "an integer >= 1",
            self.batch_size,
        )
        _check(_is_int(self.epochs) and self.epochs >= 1, "epochs", "an integer >= 1", self.epochs)
        _check(self.seed is None or _is_int(self.seed), "seed", "an integer or None", self.seed)
        _check(
            _is_number(self.aux_weight) and math.isfinite(self.aux_weight) and self.aux_weight >= 0,
            "aux_weight",
            "a finite number >= 0",
            self.aux_weight,
        )
        _check(self.device in DEVICES, "device", f"one of {DEVICES}", self.device)
        _check(
            _is_int(self.report_every_n_steps) and self.report_every_n_steps >= 1,
            "report_every_n_steps",
            "an integer >= 1",
            self.report_every_n_steps,
        )
        _check(
            self.checkpoint_path is None or isinstance(self.checkpoint_path, (str, os.PathLike)),
            "checkpoint_path",
            "a path or None",
            self.checkpoint_path,
        )
        _check(
            self.num_threads is None or (_is_int(self.num_threads) and self.num_threads >= 1),
            "num_threads",
            "an integer >= 1 or None",
            self.num_threads,
        )
        _check(
            self.max_steps_per_epoch is None
            or (_is_int(self.max_steps_per_epoch) and self.max_steps_per_epoch >= 1),
            "max_steps_per_epoch",
            "an integer >= 1 or None",
            self.max_steps_per_epoch,
        )

    def to_dict(self) -> dict[str, Any]:
        """The configuration as plain JSON values (for checkpoints and files)."""
        out = dataclasses.asdict(self)
        if out["checkpoint_path"] is not None:
            out["checkpoint_path"] = os.fspath(out["checkpoint_path"])
        return out

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """A configuration from :meth:`to_dict`'s output; unknown keys are an error."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise TrainConfigError(f"unknown training settings: {', '.join(unknown)}")
        return cls(**values)


# --------------------------------------------------------------------------- control


class TrainControl:
    """Stop and pause flags, set from any thread, read by :func:`train` before every batch."""

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._running = threading.Event()  # cleared while paused; train() waits on it
        self._running.set()

    def stop(self) -> None:
        """Ask training to end before its next batch; it yields a ``"stopped"`` report."""
        self._stop.set()
        self._running.set()  # wake a paused loop so that it can see the stop

    def pause(self) -> None:
        """Block training before its next batch until :meth:`resume` or :meth:`stop`."""
        self._running.clear()

    def resume(self) -> None:
        """Let a paused training go on."""
        self._running.set()

    @property
    def stop_requested(self) -> bool:
        """True once :meth:`stop` was called."""
        return self._stop.is_set()

    @property
    def paused(self) -> bool:
        """True between :meth:`pause` and :meth:`resume`."""
        return not self._running.is_set()

    def wait_while_paused(self) -> float:
        """Block while paused (no spinning); the seconds spent waiting."""
        if self._running.is_set():
            return 0.0
        start = time.perf_counter()
        self._running.wait()
        return time.perf_counter() - start


# --------------------------------------------------------------------------- reports


@dataclass(frozen=True)
class Report:
    """What training has done so far; plain numbers only, safe to hand to another thread.

    Attributes:
        kind: ``"step"``, ``"epoch"``, ``"finished"``, ``"stopped"`` or ``"failed"``.
        epoch: Current epoch, counted from 1.
        epochs: Epochs asked for.
        step: Batches done in the current epoch.
        steps_per_epoch: Batches in one epoch.
        global_step: Batches done since training began.
        train_loss: Mean training loss over the batches of this epoch so far (the objective
            that is minimised: auxiliary losses included, weighted).
        train_accuracy: Share of the training images of this epoch so far classified right
            (main output), in [0, 1].
        batch_loss: Loss of the last batch.
        lr: Learning rate of the last batch.
        images_per_s: Training images per second since the previous report (paused time and
            validation excluded).
        elapsed_s: Seconds since training began, paused time excluded.
        eta_s: Estimated seconds left.
        val_loss: Validation loss (epoch reports, and final reports after an epoch), else None.
        val_accuracy: Validation accuracy, else None.
        message: Why training failed or stopped; empty otherwise.
    """

    kind: str
    epoch: int
    epochs: int
    step: int
    steps_per_epoch: int
    global_step: int
    train_loss: float
    train_accuracy: float
    batch_loss: float
    lr: float
    images_per_s: float
    elapsed_s: float
    eta_s: float
    val_loss: float | None = None
    val_accuracy: float | None = None
    message: str = ""


_CSV_FIELDS = tuple(f.name for f in dataclasses.fields(Report))


def metrics_to_csv(reports: Iterable[Report], path: str | os.PathLike[str]) -> Path:
    """Write reports as CSV: a header of the :class:`Report` fields, one row per report.

    Returns:
        The path written.
    """
    path = Path(path)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(_CSV_FIELDS)
        for report in reports:
            writer.writerow(
                ["" if (v := getattr(report, name)) is None else v for name in _CSV_FIELDS]
            )
    return path


# --------------------------------------------------------------------------- helpers


def seed_everything(seed: int) -> None:
    """Seed torch (CPU and GPUs), numpy and Python's ``random``."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


_INIT_LAYERS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d, nn.Linear)


def init_weights(model: nn.Module, scheme: str) -> None:
    """Initialise the convolutions and linear layers of ``model`` in place.

    Args:
        model: The network.
        scheme: One of :data:`INITS`; ``"default"`` leaves the weights alone. Biases become
            zero; normalisation layers keep their own initialisation.
    """
    _check(scheme in INITS, "init", f"one of {INITS}", scheme)
    if scheme == "default":
        return
    with torch.no_grad():
        for module in model.modules():
            if not isinstance(module, _INIT_LAYERS):
                continue
            if scheme == "xavier":
                nn.init.xavier_uniform_(module.weight)
            elif scheme == "he":
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
            else:
                nn.init.zeros_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)


def _make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if config.optimizer == "sgd":
        return torch.optim.SGD(
            params,
            lr=config.lr,
            momentum=config.momentum,
            weight_decay=config.weight_decay,
            nesterov=config.nesterov,
        )
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)


def _make_schedule(
    optimizer: torch.optim.Optimizer, config: TrainConfig, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LRScheduler | None:
    total = max(1, config.epochs * steps_per_epoch)
    if config.schedule == "step":
        return torch.optim.lr_scheduler.StepLR(
            optimizer, step_size=config.step_size * steps_per_epoch, gamma=config.gamma
        )
    if config.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total)
    if config.schedule == "one-cycle":
        # Momentum cycling needs a momentum (or beta1) > 0 to cycle; SGD without momentum has
        # none, and torch refuses it there.
        cycle = config.optimizer != "sgd" or config.momentum > 0
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=config.lr, total_steps=total, cycle_momentum=cycle
        )
    return None


def _split_outputs(output: Any) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Main logits and auxiliary logits of a model output (tensor, tuple or namedtuple)."""
    if isinstance(output, torch.Tensor):
        return output, []
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        return output[0], [o for o in output[1:] if isinstance(o, torch.Tensor)]
    raise CnnvizError(
        f"the model returned {type(output).__name__}; training needs logits (a tensor) or a "
        "tuple whose first item is the logits"
    )


def training_loss(
    output: Any, labels: torch.Tensor, aux_weight: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cross-entropy of the main logits plus ``aux_weight`` times each auxiliary loss.

    Returns:
        The loss and the main logits.
    """
    logits, aux = _split_outputs(output)
    loss = nn.functional.cross_entropy(logits, labels)
    for extra in aux:
        loss = loss + aux_weight * nn.functional.cross_entropy(extra, labels)
    return loss, logits


def _is_out_of_memory(error: BaseException) -> bool:
    oom_type = getattr(torch.cuda, "OutOfMemoryError", None)
    if oom_type is not None and isinstance(error, oom_type):
        return True
    return isinstance(error, RuntimeError) and "out of memory" in str(error).lower()


def _evaluate(
    model: nn.Module,
    data: DatasetBundle,
    device: torch.device,
    batch_size: int,
    control: TrainControl | None = None,
) -> tuple[float, float] | None:
    """Mean loss and accuracy of ``model`` (eval mode) on the validation split.

    Returns None when ``control`` asks for a stop meanwhile: a large validation split must not
    hold a stop up for seconds.
    """
    was_training = model.training
    model.eval()
    total_loss = 0.0
    correct = 0
    count = 0
    loader = DataLoader(data.val, batch_size=max(batch_size, 256), shuffle=False)
    try:
        with torch.no_grad():
            for images, labels in loader:
                if control is not None and control.stop_requested:
                    return None
                images = images.to(device)
                labels = labels.to(device)
                logits, _ = _split_outputs(model(images))
                total_loss += float(
                    nn.functional.cross_entropy(logits, labels, reduction="sum").item()
                )
                correct += int((logits.argmax(1) == labels).sum().item())
                count += labels.shape[0]
    finally:
        model.train(was_training)
    if count == 0:
        return math.nan, math.nan
    return total_loss / count, correct / count


class _WeightGuard:
    """A copy of the parameters and buffers that last gave a finite loss.

    The copies live in preallocated tensors and are refreshed with one ``_foreach_copy_``
    per step, so keeping them costs a memory copy of the weights per step (measured: 0.3 % of a
    LeNet-5 step, 0.1 % of a teaching ResNet-18 step on the CPU), and never an allocation.
    """

    def __init__(self, model: nn.Module) -> None:
        self._live = [t for t in model.state_dict(keep_vars=True).values() if t.is_floating_point()]
        with torch.no_grad():
            self._saved = [t.detach().clone() for t in self._live]

    def save(self) -> None:
        with torch.no_grad():
            torch._foreach_copy_(self._saved, [t.detach() for t in self._live])

    def restore(self) -> None:
        with torch.no_grad():
            for live, saved in zip(self._live, self._saved, strict=True):
                live.detach().copy_(saved)


# --------------------------------------------------------------------------- the loop


def train(
    model: nn.Module,
    data: DatasetBundle,
    config: TrainConfig,
    control: TrainControl | None = None,
) -> Iterator[Report]:
    """Train ``model`` on ``data``, yielding reports; the last one ends the run.

    The generator can run in any thread (see :func:`configure_main_thread` for the GUI). The
    model is moved to the chosen device and stays there; its train/eval mode is put back at
    the end. A ``"stopped"`` run keeps the weights it has; a ``"failed"`` one (loss not
    finite, out of memory, an error in the model) says why in ``message``, and after a
    non-finite loss puts back the last weights that gave a finite loss.

    Args:
        model: The network; returns logits, or a tuple ``(logits, *aux_logits)`` in training.
        data: Training and validation splits.
        config: Hyper-parameters.
        control: Stop and pause flags, set from another thread; None for none.

    Yields:
        :class:`Report` objects.

    Raises:
        TrainConfigError: The device asked for is not available.
        CnnvizError: The model's output is not logits, or the data cannot be read (a
            :class:`~cnnviz.core.data.DatasetError` from an image folder).
    """
    control = control or TrainControl()
    try:
        device = pick_device(config.device)
    except ValueError as exc:
        raise TrainConfigError(f"device: {exc}") from exc
    # Put the thread count back afterwards: a new thread inherits the last value set anywhere.
    threads_before = torch.get_num_threads()
    configure_worker_thread(config.num_threads)
    was_training = model.training
    try:
        yield from _train(model, data, config, control, device)
    finally:
        model.train(was_training)
        torch.set_num_threads(threads_before)


def _train(
    model: nn.Module,
    data: DatasetBundle,
    config: TrainConfig,
    control: TrainControl,
    device: torch.device,
) -> Iterator[Report]:
    if config.seed is not None:
        seed_everything(config.seed)
    init_weights(model, config.init)
    model.to(device)
    model.train()

    generator = torch.Generator()
    generator.manual_seed(config.seed if config.seed is not None else random.getrandbits(63))
    pin = device.type == "cuda"
    loader = DataLoader(
        data.train,
        batch_size=config.batch_size,
        shuffle=True,
        generator=generator,
        # A last batch of one image breaks batch norm in training mode; drop the remainder
        # unless it is all there is.
        drop_last=len(data.train) > config.batch_size,
        pin_memory=pin,
    )
    steps_per_epoch = len(loader)
    if config.max_steps_per_epoch is not None:
        steps_per_epoch = min(steps_per_epoch, config.max_steps_per_epoch)
    total_steps = steps_per_epoch * config.epochs
    optimizer = _make_optimizer(model, config)
    schedule = _make_schedule(optimizer, config, steps_per_epoch)
    guard = _WeightGuard(model)

    start = time.perf_counter()
    paused_s = 0.0
    global_step = 0
    window_images = 0
    window_start = start
    last_val: tuple[float | None, float | None] = (None, None)
    epoch = 1
    step = 0
    loss_sum = 0.0
    correct = 0
    seen = 0
    batch_loss = math.nan
    lr = float(optimizer.param_groups[0]["lr"])

    def report(
        kind: str, message: str = "", val: tuple[float | None, float | None] = (None, None)
    ) -> Report:
        nonlocal window_images, window_start
        now = time.perf_counter()
        elapsed = now - start - paused_s
        window = now - window_start
        rate = window_images / window if window > 0 and window_images else 0.0
        window_images = 0
        window_start = now
        left = total_steps - global_step
        eta = elapsed / global_step * left if global_step and kind in ("step", "epoch") else 0.0
        return Report(
            kind=kind,
            epoch=epoch,
            epochs=config.epochs,
            step=step,
            steps_per_epoch=steps_per_epoch,
            global_step=global_step,
            train_loss=loss_sum / step if step else math.nan,
            train_accuracy=correct / seen if seen else math.nan,
            batch_loss=batch_loss,
            lr=lr,
            images_per_s=rate,
            elapsed_s=elapsed,
            eta_s=eta,
            val_loss=val[0],
            val_accuracy=val[1],
            message=message,
        )

    for epoch in range(1, config.epochs + 1):
        step = 0
        loss_sum = 0.0
        correct = 0
        seen = 0
        for images, labels in loader:
            if control.paused:
                waited = control.wait_while_paused()
                paused_s += waited
                window_start += waited
            if control.stop_requested:
                yield report("stopped", "stopped by request; the weights are kept", last_val)
                return
            images = images.to(device, non_blocking=pin)
            labels = labels.to(device, non_blocking=pin)
            lr = float(optimizer.param_groups[0]["lr"])
            updating = False
            try:
                loss, logits = training_loss(model(images), labels, config.aux_weight)
                batch_loss = float(loss.item())
                if not math.isfinite(batch_loss):
                    guard.restore()
                    step += 1
                    global_step += 1
                    yield report(
                        "failed",
                        f"the loss became {batch_loss} at epoch {epoch}, step {step} "
                        f"(learning rate {lr:g}); the last weights that gave a finite loss "
                        "were put back. Try a smaller learning rate, such as "
                        f"{lr / 10:g}.",
                        last_val,
                    )
                    return
                guard.save()
                updating = True
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
            except Exception as exc:
                optimizer.zero_grad(set_to_none=True)
                if updating:
                    # An error in backward() or step() may leave a half-updated model;
                    # the guard holds the weights this step started from.
                    guard.restore()
                if _is_out_of_memory(exc):
                    if device.type == "cuda":
                        torch.cuda.empty_cache()
                    smaller = max(1, config.batch_size // 2)
                    message = (
                        f"out of memory on {device.type} at epoch {epoch}, step {step + 1} "
                        f"with batch size {config.batch_size}; try a smaller batch size, "
                        f"such as {smaller}"
                    )
                elif isinstance(exc, (RuntimeError, ValueError, CnnvizError)):
                    message = (
                        f"training failed at epoch {epoch}, step {step + 1} on a batch of "
                        f"shape {tuple(images.shape)}: {exc}"
                    )
                else:
                    raise
                yield report("failed", message, last_val)
                return
            if schedule is not None:
                schedule.step()
            step += 1
            global_step += 1
            loss_sum += batch_loss
            correct += int((logits.detach().argmax(1) == labels).sum().item())
            seen += labels.shape[0]
            window_images += labels.shape[0]
            if step % config.report_every_n_steps == 0:
                yield report("step")
            if step >= steps_per_epoch:
                break
        # Validation time is not training throughput: keep it out of the rate.
        eval_start = time.perf_counter()
        evaluated = _evaluate(model, data, device, config.batch_size, control)
        window_start += time.perf_counter() - eval_start
        if evaluated is None:
            yield report("stopped", "stopped by request; the weights are kept", last_val)
            return
        last_val = evaluated
        yield report("epoch", val=last_val)
        if config.checkpoint_path is not None:
            try:
                save_checkpoint(
                    config.checkpoint_path,
                    model,
                    optimizer,
                    config,
                    epoch,
                    {"val_loss": last_val[0], "val_accuracy": last_val[1]},
                )
            except CnnvizError as exc:
                # The weights are fine, but a run the user asked to keep must not go on
                # silently unsaved.
                yield report("failed", f"{exc}; the weights in memory are kept", last_val)
                return
    yield report("finished", val=last_val)


# --------------------------------------------------------------------------- checkpoints


def save_checkpoint(
    path: str | os.PathLike[str],
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None,
    config: TrainConfig | dict[str, Any] | None,
    epoch: int,
    metrics: dict[str, Any] | None = None,
) -> Path:
    """Save model (and optimizer) state atomically: an existing file is replaced only whole.

    The data goes to a temporary file in the same folder, is flushed to disk, then renamed
    over ``path``; a failure on the way leaves the old file as it was and no temporary file.

    Args:
        path: Destination file.
        model: The network.
        optimizer: Its optimizer, or None.
        config: Training configuration (stored as a plain dict so that loading needs no
            pickled classes), or None.
        epoch: Epochs done.
        metrics: Plain numbers to keep alongside (validation loss, ...).

    Returns:
        The path written.

    Raises:
        CnnvizError: The file cannot be written.
    """
    path = Path(path)
    config_dict = config.to_dict() if isinstance(config, TrainConfig) else config
    payload = {
        "format": "cnnviz-checkpoint",
        "version": 1,
        "model_class": type(model).__name__,
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "config": config_dict,
        "epoch": int(epoch),
        "metrics": dict(metrics or {}),
    }
    tmp_name = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as handle:
            torch.save(payload, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
        tmp_name = None
    except Exception as exc:
        raise CnnvizError(f"cannot save checkpoint {path}: {exc}") from exc
    finally:
        if tmp_name is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp_name)
    return path


def load_checkpoint(
    path: str | os.PathLike[str],
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
) -> dict[str, Any]:
    """Load a checkpoint from :func:`save_checkpoint` into ``model`` (and ``optimizer``).

    Loading uses ``torch.load(weights_only=True)``: no code in the file runs. Everything is
    checked before anything is copied, so on an error the model is untouched.

    Returns:
        ``{"config": dict | None, "epoch": int, "metrics": dict, "model_class": str}``.

    Raises:
        CnnvizError: The file is missing, unreadable, not a cnnviz checkpoint, or does not fit
            the model (the message names the file and the missing, unexpected or mis-shaped
            entries).
    """
    path = Path(path)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError as exc:
        raise CnnvizError(f"checkpoint {path} does not exist") from exc
    except Exception as exc:
        raise CnnvizError(
            f"cannot read checkpoint {path}: it is damaged or not one ({exc})"
        ) from exc
    if not isinstance(payload, dict) or payload.get("format") != "cnnviz-checkpoint":
        raise CnnvizError(f"{path} is not a cnnviz checkpoint")
    state = payload.get("model")
    if not isinstance(state, dict):
        raise CnnvizError(f"checkpoint {path} holds no model weights")
    own = model.state_dict()
    problems = _state_mismatch(own, state)
    if problems:
        raise CnnvizError(
            f"checkpoint {path} does not fit this model ({payload.get('model_class', '?')} "
            f"saved, {type(model).__name__} here): " + "; ".join(problems)
        )
    opt_state = payload.get("optimizer")
    if optimizer is not None and opt_state is not None:
        groups = opt_state.get("param_groups", []) if isinstance(opt_state, dict) else []
        if [len(g.get("params", [])) for g in groups] != [
            len(g["params"]) for g in optimizer.param_groups
        ]:
            raise CnnvizError(
                f"checkpoint {path}: its optimizer state does not fit this optimizer's parameters"
            )
    try:
        model.load_state_dict(state)
        if optimizer is not None and opt_state is not None:
            optimizer.load_state_dict(opt_state)
    except Exception as exc:  # checked above; anything left is still the user's file
        raise CnnvizError(f"cannot load checkpoint {path}: {exc}") from exc
    return {
        "config": payload.get("config"),
        "epoch": int(payload.get("epoch", 0)),
        "metrics": payload.get("metrics", {}),
        "model_class": payload.get("model_class", ""),
    }


def _state_mismatch(own: dict[str, torch.Tensor], saved: dict[str, Any]) -> list[str]:
    problems = []
    missing = [k for k in own if k not in saved]
    unexpected = [k for k in saved if k not in own]
    if missing:
        problems.append("missing " + _some(missing))
    if unexpected:
        problems.append("unexpected " + _some(unexpected))
    for key, tensor in own.items():
        value = saved.get(key)
        if value is None:
            continue
        if not isinstance(value, torch.Tensor):
            problems.append(f"{key} is not a tensor")
        elif value.shape != tensor.shape:
            problems.append(
                f"shape of {key}: {tuple(value.shape)} in the file, {tuple(tensor.shape)} in the "
                "model"
            )
    return problems


def _some(keys: Sequence[str], limit: int = 5) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f" and {len(keys) - limit} more" if len(keys) > limit else "")
