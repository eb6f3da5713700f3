"""``cnnviz train``: JSON lines per epoch, readable lines, and errors with exit status 2."""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from cnnviz.core import train_cli, training
from cnnviz.errors import CnnvizError

ROOT = Path(__file__).resolve().parents[2]


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    train_cli.configure(parser)
    return parser.parse_args(list(argv))


def test_choices_match_the_trainer():
    assert train_cli.OPTIMIZERS == training.OPTIMIZERS
    assert train_cli.SCHEDULES == training.SCHEDULES
    assert train_cli.INITS == training.INITS
    assert train_cli.DEVICES == training.DEVICES


def test_json_lines_parse_and_carry_the_epoch_figures(tmp_path: Path):
    ckpt = tmp_path / "lenet.pt"
    out = io.StringIO()
    args = _args(
        "lenet5",
        "--dataset",
        "shapes",
        "--epochs",
        "2",
        "--train-size",
        "400",
        "--max-steps-per-epoch",
        "3",
        "--batch-size",
        "16",
        "--device",
        "cpu",
        "--json",
        "--save",
        str(ckpt),
    )
    assert train_cli.run(args, out) == 0
    lines = out.getvalue().splitlines()
    assert len(lines) == 2, lines
    records = [json.loads(line) for line in lines]
    keys = {"epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "elapsed_seconds"}
    for number, record in enumerate(records, start=1):
        assert keys <= set(record)
        assert record["epoch"] == number
        assert 0.0 <= record["train_accuracy"] <= 1.0 and 0.0 <= record["val_accuracy"] <= 1.0
        assert math.isfinite(record["train_loss"]) and record["val_loss"] > 0
    assert 0 < records[0]["elapsed_seconds"] < records[1]["elapsed_seconds"]
    # The checkpoint holds the weights that gave the last validation loss: check it with torch.
    from cnnviz.core.analysis import analyse
    from cnnviz.core.build import build_module
    from cnnviz.core.data import load_dataset_for_model
    from cnnviz.core.sources import load_source

    graph = load_source("lenet5", size="teaching")
    model = build_module(graph)
    info = training.load_checkpoint(ckpt, model)
    assert info["epoch"] == 2
    data = load_dataset_for_model("shapes", analyse(graph).input_shape, train_size=400, seed=0)
    images, labels = data.val.batch(list(range(len(data.val))))
    model.eval()
    with torch.no_grad():
        loss = torch.nn.functional.cross_entropy(model(images), labels).item()
    assert loss == pytest.approx(records[-1]["val_loss"], rel=1e-4)


def test_readable_lines_without_json():
    out = io.StringIO()
    args = _args("lenet5", "--epochs", "1", "--train-size", "200", "--max-steps-per-epoch", "2")
    assert train_cli.run(args, out) == 0
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("training lenet5") and "shapes28" in lines[0]
    assert lines[1].startswith("epoch 1/1") and "val loss" in lines[1]


def test_nan_loss_is_an_error_naming_the_learning_rate():
    args = _args(
        "lenet5", "--lr", "1e6", "--optimizer", "sgd", "--train-size", "200", "--batch-size", "32"
    )
    with pytest.raises(CnnvizError, match=r"loss became (nan|inf).*learning rate 1e\+06"):
        train_cli.run(args, io.StringIO())


def test_shape_mismatch_is_named():
    with pytest.raises(CnnvizError, match="CIFAR-10 images are 3x32x32.*takes 1x28x28"):
        train_cli.run(_args("lenet5", "--dataset", "cifar10"), io.StringIO())


def test_missing_dataset_exits_2_and_says_which_files_to_put_where(tmp_path: Path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "cnnviz", "train", "lenet5", "--dataset", "mnist"]
        + ["--data-dir", str(tmp_path), "--epochs", "1"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("cnnviz: error: MNIST files not found")
    assert str(tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte") in done.stderr
    assert "Traceback" not in done.stderr
    assert list(tmp_path.iterdir()) == []
