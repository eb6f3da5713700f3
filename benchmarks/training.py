"""Training throughput in a worker thread against a plain PyTorch loop in the main thread.

Run: ``.venv/bin/python benchmarks/training.py [--accuracy] [--turns N]`` (about 7 minutes,
8 with ``--accuracy``). The GUI runs :func:`cnnviz.core.training.train` in a ``QThread``; this
measures, for LeNet-5 (1x28x28, batch 64) and the teaching-size ResNet-18 (3x32x32, batch
128), SGD with momentum on shapes:

- ``bare_main``: a bare PyTorch loop (DataLoader, forward, loss, backward, step) in the main
  thread with torch's default threads: the baseline;
- ``bare_main_threads``: the same after ``torch.set_num_threads(torch.get_num_threads())``,
  which ``train()`` does too (torch then also calls ``mkl_set_dynamic(0)``);
- ``train_main``: ``train()`` in the main thread (the cost of reports, NaN guard, accuracy);
- ``train_thread``: ``train()`` in a ``threading.Thread`` (a ``QThread`` is a native thread as
  well) after the main thread has done torch work with the default threads, as a GUI does when
  it infers shapes or shows a probe; the main thread then idles, blocked on a queue;
- ``train_thread_fixed``: the same after :func:`configure_main_thread` in the main thread,
  the fix cnnviz adopts (see ``cnnviz/core/training.py``);
- ``gui_worker``: the app as the user runs it: an offscreen ``QApplication`` whose main thread
  runs the Qt event loop, a :class:`~cnnviz.ui.training_panel.TrainingPanel` shown with its
  live curves beside a :class:`~cnnviz.ui.probe_panel.ProbePanel` showing the activation
  probe, and ``train()`` of the model built from the zoo entry's graph (what the app trains)
  in the real :class:`~cnnviz.ui.workers.TrainWorker` (step signals throttled to 10 a second,
  curves redrawn from them, probe captures a second of training apart). A slot resumes the
  worker and an observer pauses it again after the slot's steps (``configure_main_thread``
  first, as the app does at start-up). It also prints (stderr) how busy the GUI thread was
  during its slots, in % of a core: the GUI's own work is what the trainer loses to it.

Each variant lives in its own interpreter, because what the main thread did before (which
OpenMP thread teams exist) is exactly what is measured. The machine's speed drifts by 10% and
more over seconds (a bare loop timed again and again on an idle machine: coefficient of
variation 0.1, neighbouring slots correlated), so the processes take turns, one slot of a few
steps at a time while the others wait: ``bare_main``, a variant, ``bare_main``, another
variant, ... (the order of the variants shuffled each turn). Each slot's rate is divided by
the mean of the two ``bare_main`` slots beside it, and a variant's figure is the geometric
mean of its ratios, printed with a 95% confidence interval. ``bare_main_threads`` does what
``bare_main`` does: its ratio shows what the method reads for no difference at all.

The last line is one JSON object with ``<model>_<variant>_ratio`` keys, ``lenet_worker_ratio``
and ``resnet18_worker_ratio`` (the app's trainer in its worker with live curves and the probe,
``gui_worker``; goal >= 0.95) with ``..._ci95_low`` and ``..._ci95_high``
(``train_thread_ratio`` is the naive thread, for comparison), and with ``--accuracy``
``lenet_val_acc_60s``: the validation accuracy LeNet-5 reaches on shapes in 60 s of training
with ``train()`` in a worker thread (Adam, cosine schedule; goal >= 0.95).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import random
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

BASELINE = "bare_main"
VARIANTS = (
    "bare_main",
    "bare_main_threads",
    "train_main",
    "train_thread",
    "train_thread_fixed",
    "gui_worker",
)
MODELS = {
    # name: (zoo name, data set, batch, warm-up steps, steps per slot, turns, pool size)
    "lenet": ("lenet5", "shapes", 64, 20, 50, 30, 12_000),
    "resnet18": ("resnet18", "shapes32", 128, 2, 3, 12, 3_000),
}


def _slot_config(batch: int):
    """What every ``train()`` variant trains with: SGD as the bare loop, a report per step."""
    from cnnviz.core.training import TrainConfig

    return TrainConfig(
        optimizer="sgd",
        lr=0.01,
        momentum=0.9,
        batch_size=batch,
        epochs=1000,  # never reached: the slots end the run
        device="cpu",
        report_every_n_steps=1,
        seed=0,
    )


def _child(model_key: str, variant: str) -> None:
    """Serve one variant: set up, warm up, then time one slot per ``go`` line on stdin."""
    import queue

    import torch
    from torch import nn

    from cnnviz.core import zoo
    from cnnviz.core.data import load_dataset
    from cnnviz.core.training import configure_main_thread, train

    if variant in ("train_thread_fixed", "gui_worker"):
        configure_main_thread()  # first, as the GUI does at start-up
    if variant == "bare_main_threads":
        # What train() does through configure_worker_thread(): setting the count explicitly
        # also turns MKL's dynamic thread adjustment off.
        torch.set_num_threads(torch.get_num_threads())
    name, dataset, batch, warm, steps, _slots, pool = MODELS[model_key]
    # A validation split of one batch: an epoch's end inside a slot costs the train() variants
    # (not the bare loop) a validation pass, which is not training throughput.
    data = load_dataset(dataset, train_size=pool, val_fraction=batch / pool, seed=0)
    torch.manual_seed(0)
    model, _ = zoo.build(name)
    # What a GUI thread does before training: a forward and backward pass on a batch (shape
    # inference, a probe). With default threads this creates the main thread's OpenMP team.
    images, labels = data.train.batch(list(range(batch)))
    nn.functional.cross_entropy(model(images), labels).backward()
    model.zero_grad(set_to_none=True)

    if variant == "gui_worker":
        _serve_gui(name, data, batch, warm, steps)
        return
    if variant.startswith("bare_main"):
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        loader = data.loader("train", batch, seed=0, drop_last=True)

        def batches():
            while True:
                yield from loader

        feed = batches()

        def run_steps(count: int) -> None:
            for _ in range(count):
                images, labels = next(feed)
                loss = nn.functional.cross_entropy(model(images), labels)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
    else:
        config = _slot_config(batch)
        reports = None  # created in the thread that consumes it

        def run_steps(count: int) -> None:
            nonlocal reports
            if reports is None:
                reports = train(model, data, config)
            done = 0
            while done < count:  # an epoch report (a small validation) may come in between
                done += next(reports).kind == "step"

    def slot() -> float:
        start = time.perf_counter()
        run_steps(steps)
        return steps * batch / (time.perf_counter() - start)

    def serve(ask, answer) -> None:
        run_steps(warm)
        answer("ready")
        while ask() == "go":
            answer(f"{slot():.3f}")

    def ask_stdin() -> str:
        return sys.stdin.readline().strip()

    def answer_stdout(text: str) -> None:
        print(text, flush=True)

    if variant in ("bare_main", "bare_main_threads", "train_main"):
        serve(ask_stdin, answer_stdout)
        return
    # The main thread only relays, blocked on a pipe or a queue, as a GUI's event loop idles.
    asks: queue.Queue[str] = queue.Queue()
    answers: queue.Queue[str] = queue.Queue()
    worker = threading.Thread(target=serve, args=(asks.get, answers.put))
    worker.start()
    answer_stdout(answers.get())
    while True:
        line = ask_stdin()
        asks.put(line)
        if line != "go":
            break
        answer_stdout(answers.get())
    worker.join()


def _serve_gui(name: str, data, batch: int, warm: int, steps: int) -> None:
    """The ``gui_worker`` variant: the event loop in the main thread, a relay thread on stdin.

    It trains what the app trains: the model built from the zoo entry's graph (the app's
    ``GraphModel``), with the activation probe attached and shown beside the curves.
    """
    import torch
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication, QHBoxLayout, QWidget

    from cnnviz.core.analysis import analyse
    from cnnviz.core.sources import load_source
    from cnnviz.core.training import TrainControl
    from cnnviz.ui.probe_panel import ProbePanel
    from cnnviz.ui.training_panel import TrainingPanel

    app = QApplication.instance() or QApplication([])
    graph = load_source(name, size="teaching")
    analysis = analyse(graph)
    window = QWidget()  # the Training and Activations docks side by side, as on a wide screen
    layout = QHBoxLayout(window)
    panel = TrainingPanel()
    probes = ProbePanel()
    layout.addWidget(panel, 3)
    layout.addWidget(probes, 2)
    panel.set_model(graph, analysis)
    probes.set_model(graph, analysis)
    probes.attach_training_panel(panel)
    window.resize(1900, 420)
    window.show()
    torch.manual_seed(0)
    model = panel.ensure_model()
    config = _slot_config(batch)
    control = TrainControl()
    state = {"count": 0, "target": warm, "end": 0.0}
    slot_done = threading.Event()
    quit_asked = threading.Event()

    def observer(model, report):
        # Runs in the worker thread after every report: the probe's own observer first (it
        # captures every few steps), then a pause at the slot's last step.
        result = probes.observe(model, report)
        if report.kind == "step":
            state["count"] += 1
            if state["count"] >= state["target"]:
                state["end"] = time.perf_counter()
                control.pause()
                slot_done.set()
        return result

    gui_clock = time.pthread_getcpuclockid(threading.main_thread().ident)
    gui_cpu = {"cpu": 0.0, "wall": 0.0}

    def relay() -> None:
        slot_done.wait()
        print("ready", flush=True)
        while sys.stdin.readline().strip() == "go":
            slot_done.clear()
            state["target"] = state["count"] + steps
            cpu0 = time.clock_gettime(gui_clock)
            start = time.perf_counter()
            control.resume()
            slot_done.wait()
            gui_cpu["cpu"] += time.clock_gettime(gui_clock) - cpu0
            gui_cpu["wall"] += state["end"] - start
            print(f"{steps * batch / (state['end'] - start):.3f}", flush=True)
        quit_asked.set()

    def poll_quit() -> None:
        if quit_asked.is_set():
            panel.shutdown()
            app.quit()

    shown = {"probes": 0}
    panel.sig_probe.connect(lambda _bundle: shown.__setitem__("probes", shown["probes"] + 1))
    panel.set_observer(observer)
    # Data as a function, as the window passes it: the probe starts on sig_data_ready.
    panel.start_run(model, lambda: data, config, control)
    threading.Thread(target=relay, daemon=True).start()
    timer = QTimer()
    timer.timeout.connect(poll_quit)
    timer.start(50)
    app.exec()
    redraws = panel.curves.redraw_count
    captures = shown["probes"]
    share = gui_cpu["cpu"] / gui_cpu["wall"] if gui_cpu["wall"] else math.nan
    # The GUI thread's own CPU time during the timed slots: what it takes from the trainer,
    # whose threads share the GIL and the cores with it.
    print(
        f"gui_worker: {redraws} curve redraws, {captures} activation captures shown; GUI thread "
        f"busy {100 * share:.1f}% of a core while training",
        file=sys.stderr,
    )


def _interleaved(
    model_key: str, env: dict[str, str], turns: int
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Each variant's images/s in a slot divided by the baseline's in the slots around it.

    Returns:
        The ratios per variant (the baseline's own left out), and the images/s per variant.

    The baseline's slots alternate with the others' (baseline, A, baseline, C, baseline, B,
    ...; the order shuffled each turn), and each slot is compared with the mean of the two
    baseline slots beside it, so that the machine's load, which drifts over seconds, cancels.
    """
    children = {
        variant: subprocess.Popen(
            [sys.executable, __file__, "--child", model_key, variant],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        for variant in VARIANTS
    }

    rates: dict[str, list[float]] = {v: [] for v in VARIANTS}

    def timed(variant: str) -> float:
        child = children[variant]
        child.stdin.write("go\n")
        child.stdin.flush()
        rates[variant].append(float(child.stdout.readline()))
        return rates[variant][-1]

    try:
        for variant, child in children.items():
            line = child.stdout.readline().strip()
            if line != "ready":
                raise RuntimeError(f"{variant} did not start: {line!r}")
        others = [v for v in VARIANTS if v != BASELINE]
        ratios: dict[str, list[float]] = {v: [] for v in others}
        order = random.Random(0)
        before = timed(BASELINE)
        for _ in range(turns):
            order.shuffle(others)
            for variant in others:
                rate = timed(variant)
                after = timed(BASELINE)
                ratios[variant].append(rate / ((before + after) / 2))
                before = after
        return ratios, rates
    finally:
        for child in children.values():
            with contextlib.suppress(OSError):
                child.stdin.write("quit\n")
                child.stdin.close()
            child.wait(timeout=60)


def _summary(ratios: list[float]) -> tuple[float, float, float]:
    """Geometric mean of ``ratios`` and its 95 % confidence interval (normal approximation)."""
    logs = [math.log(r) for r in ratios]
    mean = statistics.fmean(logs)
    half = 1.96 * statistics.stdev(logs) / math.sqrt(len(logs)) if len(logs) > 1 else math.inf
    return math.exp(mean), math.exp(mean - half), math.exp(mean + half)


def _accuracy_60s(seconds: float, rate: float) -> tuple[float, int, float]:
    """Validation accuracy of LeNet-5 on shapes after ``seconds`` of ``train()`` in a thread."""
    import torch

    from cnnviz.core import zoo
    from cnnviz.core.data import load_dataset
    from cnnviz.core.training import TrainConfig, TrainControl, configure_main_thread, train

    configure_main_thread()
    data = load_dataset("shapes", train_size=22_000, val_fraction=2_000 / 22_000, seed=0)
    torch.manual_seed(0)
    model, _ = zoo.build("lenet5")
    steps_per_epoch = len(data.train) // 64
    # Size the run so that the cosine schedule ends inside the budget (validation included),
    # from the throughput measured above; a timer stops it in any case.
    epochs = max(1, int(seconds * 0.85 * rate / 64 / (steps_per_epoch + 20)))
    config = TrainConfig(
        optimizer="adam",
        lr=2e-3,
        schedule="cosine",
        batch_size=64,
        epochs=epochs,
        device="cpu",
        report_every_n_steps=1000,
        seed=0,
    )
    control = TrainControl()
    reports = []
    timer = threading.Timer(seconds, control.stop)
    worker = threading.Thread(target=lambda: reports.extend(train(model, data, config, control)))
    start = time.perf_counter()
    timer.start()
    worker.start()
    worker.join()
    timer.cancel()
    took = time.perf_counter() - start
    accuracy = [r.val_accuracy for r in reports if r.val_accuracy is not None]
    return (accuracy[-1] if accuracy else math.nan), epochs, took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="lenet,resnet18")
    parser.add_argument("--accuracy", action="store_true", help="also LeNet-5 accuracy in 60 s")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--turns", type=int, help="turns per model (default: its own)")
    parser.add_argument("--child", nargs=2, metavar=("MODEL", "VARIANT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(*args.child)
        return

    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": str(root), "QT_QPA_PLATFORM": "offscreen"}
    result: dict[str, float | int] = {"cpu_count": os.cpu_count() or 0}
    fixed_rate = 4000.0  # images/s the accuracy run plans with, when LeNet-5 is not measured
    for model_key in args.models.split(","):
        turns = args.turns or MODELS[model_key][5]
        ratios, rates = _interleaved(model_key, env, turns)
        print(f"{model_key}: each slot's images/s over the baseline's beside it, {turns} turns")
        for variant, values in ratios.items():
            ratio, low, high = _summary(values)
            print(
                f"  {variant:19s} {statistics.median(rates[variant]):6.0f} img/s, "
                f"ratio {ratio:.3f} (95% CI {low:.3f}-{high:.3f}; median "
                f"{statistics.median(values):.3f}; slots "
                + " ".join(f"{r:.2f}" for r in values)
                + ")"
            )
            result[f"{model_key}_{variant}_ratio"] = round(ratio, 3)
            result[f"{model_key}_{variant}_images_per_s"] = round(statistics.median(rates[variant]))
        result[f"{model_key}_{BASELINE}_images_per_s"] = round(statistics.median(rates[BASELINE]))
        ratio, low, high = _summary(ratios["gui_worker"])
        result[f"{model_key}_worker_ratio"] = round(ratio, 3)
        result[f"{model_key}_worker_ratio_ci95_low"] = round(low, 3)
        result[f"{model_key}_worker_ratio_ci95_high"] = round(high, 3)
        if model_key == "lenet":
            fixed_rate = statistics.median(rates["gui_worker"])

    if args.accuracy:
        accuracy, epochs, took = _accuracy_60s(args.seconds, fixed_rate)
        print(f"LeNet-5 on shapes: val accuracy {accuracy:.4f} after {epochs} epochs, {took:.1f} s")
        result["lenet_val_acc_60s"] = round(accuracy, 4)
        result["lenet_epochs_60s"] = epochs
        result["lenet_train_s"] = round(took, 1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
