"""``cnnviz train``: train a model headless, one line per epoch (``--json``: one JSON object).

Example:
    ``cnnviz train lenet5 --dataset shapes --epochs 3 --json``
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any, TextIO

from cnnviz.errors import CnnvizError

__all__ = ["configure", "epoch_record", "main", "run"]

# The choices of cnnviz.core.training, repeated so that building the parser (``cnnviz
# --version``) does not import torch; a test checks that they agree.
OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("none", "step", "cosine", "one-cycle")
INITS = ("default", "xavier", "he", "zeros")
DEVICES = ("auto", "cpu", "cuda", "mps")


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the arguments of ``cnnviz train`` to ``parser``."""
    from cnnviz.cli import _parse_shape  # here: cnnviz.cli imports this module

    parser.add_argument(
        "source",
        help="zoo name (lenet5, resnet18, ...), torchvision:NAME, path/file.py:NAME or an "
        "architecture .json file",
    )
    parser.add_argument(
        "--dataset",
        default="shapes",
        help="shapes (built in, drawn at the model's input size), mnist, fashion-mnist, cifar10, "
        "or the path of a folder with one sub-folder of images per class (default: shapes)",
    )
    parser.add_argument("--epochs", type=int, default=1, help="passes over the training split")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3, help="learning rate (default: 0.001)")
    parser.add_argument("--optimizer", choices=OPTIMIZERS, default="adam")
    parser.add_argument("--momentum", type=float, default=0.9, help="SGD momentum")
    parser.add_argument("--weight-decay", type=float, default=0.0)
    parser.add_argument("--schedule", choices=SCHEDULES, default="none")
    parser.add_argument("--init", choices=INITS, default="default")
    parser.add_argument("--device", choices=DEVICES, default="auto")
    parser.add_argument("--seed", type=int, default=0, help="same seed, same curves")
    parser.add_argument(
        "--size",
        choices=("teaching", "original"),
        default="teaching",
        help="zoo models: the small teaching version (default) or the paper's",
    )
    parser.add_argument(
        "--input",
        type=_parse_shape,
        default=None,
        help="model input shape CxHxW (default: the model's own)",
    )
    parser.add_argument(
        "--data-dir",
        default=None,
        help="folder of the MNIST, FashionMNIST or CIFAR-10 files (default: cnnviz's data "
        "folder/datasets)",
    )
    parser.add_argument(
        "--download",
        action="store_true",
        help="fetch missing MNIST, FashionMNIST or CIFAR-10 files from the internet",
    )
    parser.add_argument(
        "--fit-input",
        action="store_true",
        help="resize and convert the data set's images to the model's input shape",
    )
    parser.add_argument(
        "--train-size", type=int, default=None, help="images in the training pool (default: all)"
    )
    parser.add_argument(
        "--max-steps-per-epoch", type=int, default=None, help="cut every epoch after N batches"
    )
    parser.add_argument("--save", metavar="CKPT", default=None, help="checkpoint after each epoch")
    parser.add_argument(
        "--json", action="store_true", help="one JSON object per line per epoch, on stdout"
    )


def _number(value: float | None) -> float | None:
    """JSON has no NaN: a value that is not finite becomes null."""
    if value is None or not math.isfinite(value):
        return None
    return float(value)


def epoch_record(report: Any) -> dict[str, Any]:
    """The JSON object of one epoch report."""
    return {
        "epoch": report.epoch,
        "epochs": report.epochs,
        "train_loss": _number(report.train_loss),
        "train_accuracy": _number(report.train_accuracy),
        "val_loss": _number(report.val_loss),
        "val_accuracy": _number(report.val_accuracy),
        "lr": _number(report.lr),
        "images_per_s": _number(report.images_per_s),
        "elapsed_seconds": round(report.elapsed_s, 3),
    }


def _line(report: Any) -> str:
    def pct(value: float | None) -> str:
        return "-" if value is None or not math.isfinite(value) else f"{value:6.1%}"

    def num(value: float | None) -> str:
        return "-" if value is None or not math.isfinite(value) else f"{value:.4f}"

    width = len(str(report.epochs))
    return (
        f"epoch {report.epoch:>{width}}/{report.epochs}  "
        f"train loss {num(report.train_loss)} acc {pct(report.train_accuracy)}  "
        f"val loss {num(report.val_loss)} acc {pct(report.val_accuracy)}  "
        f"lr {report.lr:.3g}  {report.images_per_s:,.0f} img/s  {report.elapsed_s:.1f} s"
    )


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Train as ``args`` say; print the epochs to ``out`` (stdout).

    Raises:
        CnnvizError: Bad settings, a model or data set that cannot be loaded or do not fit
            each other, or a run that failed (a non-finite loss, out of memory).
    """
    from cnnviz.core.analysis import analyse
    from cnnviz.core.build import build_module
    from cnnviz.core.data import load_dataset_for_model, model_data_mismatch
    from cnnviz.core.device import describe_device, pick_device
    from cnnviz.core.sources import load_source
    from cnnviz.core.training import TrainConfig, train

    out = out or sys.stdout
    config = TrainConfig(
        optimizer=args.optimizer,
        lr=args.lr,
        momentum=args.momentum,
        weight_decay=args.weight_decay,
        schedule=args.schedule,
        init=args.init,
        batch_size=args.batch_size,
        epochs=args.epochs,
        seed=args.seed,
        device=args.device,
        # Epoch reports only: their rate then covers the whole epoch.
        report_every_n_steps=10**9,
        checkpoint_path=args.save,
        max_steps_per_epoch=args.max_steps_per_epoch,
    )
    try:
        device = pick_device(args.device)
    except ValueError as exc:
        raise CnnvizError(str(exc)) from None
    graph = load_source(args.source, input_shape=args.input, size=args.size)
    analysis = analyse(graph)
    if analysis.errors:
        name, error = analysis.errors[0]
        raise CnnvizError(f"{graph.name} has errors and cannot be trained: {name}: {error}")
    data = load_dataset_for_model(
        args.dataset,
        analysis.input_shape,
        args.data_dir,
        fit=args.fit_input,
        train_size=args.train_size,
        seed=args.seed,
        download=args.download,
    )
    output = analysis.nodes[analysis.order[-1]].output_shape
    problem = model_data_mismatch(output, data)
    if problem:
        raise CnnvizError(problem)
    model = build_module(graph)
    if not args.json:
        print(
            f"training {graph.name} ({analysis.params:,} parameters) on {data.name}: "
            f"{len(data.train):,} training and {len(data.val):,} validation images, "
            f"{describe_device(device)}",
            file=out,
            flush=True,
        )
    last = None
    for report in train(model, data, config):
        last = report
        if report.kind == "epoch":
            text = json.dumps(epoch_record(report)) if args.json else _line(report)
            print(text, file=out, flush=True)
    if last is None or last.kind != "finished":
        raise CnnvizError(last.message if last is not None else "training did not start")
    if not args.json and args.save:
        print(f"saved {args.save}", file=out)
    return 0


def main(args: argparse.Namespace) -> int:
    """Entry point of ``cnnviz train`` (registered in :mod:`cnnviz.cli`)."""
    return run(args)
