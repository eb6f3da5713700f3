"""The embedded shapes data set: how fast it is made and served, and what it teaches.

Run: ``.venv/bin/python benchmarks/dataset.py [--seconds 60] [--threads 1]``. The last line is
one JSON object:

- ``generate_20k_s``: drawing 20,000 grey 28x28 images (goal: well under 2 s);
- ``images_per_s_loader``: a ``DataLoader`` (batch 64, shuffled) over the training split of
  ``load_dataset("shapes")``, which normalises whole batches in ``__getitems__``; with
  ``images_per_s_prenormalised`` (the float images in a plain ``TensorDataset``, the baseline)
  and ``images_per_s_per_sample`` (the same data set asked one sample at a time);
- ``lenet_val_acc_60s`` and ``mlp_val_acc_60s``: validation accuracy of LeNet-5 (61,706
  parameters) and of a multilayer perceptron 784-72-48-10 (60,514 parameters) after the same
  wall-clock budget of CPU training (Adam, batch 64, cosine learning-rate decay over the
  budget) on 20,000 training images. Goal (issue "Training"): LeNet-5 at least 95 % within
  60 s on the 2-core reference machine.
"""

from __future__ import annotations

import argparse
import json
import math
import time

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from cnnviz.core import zoo
from cnnviz.core.data import load_dataset
from cnnviz.core.datasets.shapes import render_shapes


def lenet() -> nn.Module:
    """The app's own LeNet-5 (zoo, teaching size: 1x28x28, padding 2 on C1)."""
    return zoo.build("lenet5", size="teaching")[0]


def mlp() -> nn.Module:
    """A multilayer perceptron with about as many parameters as LeNet-5."""
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(784, 72),
        nn.ReLU(),
        nn.Linear(72, 48),
        nn.ReLU(),
        nn.Linear(48, 10),
    )


def loader_rate(dataset: Dataset, epochs: int = 2) -> float:
    """Images per second through a shuffled DataLoader with batch 64."""
    loader = DataLoader(dataset, batch_size=64, shuffle=True)
    count = 0
    start = time.perf_counter()
    for _ in range(epochs):
        for images, _labels in loader:
            count += images.shape[0]
    return count / (time.perf_counter() - start)


class _OneByOne(Dataset):
    """The same data set without its batched ``__getitems__``."""

    def __init__(self, inner: Dataset) -> None:
        self.inner = inner

    def __len__(self) -> int:
        return len(self.inner)

    def __getitem__(self, index: int):
        return self.inner[index]


def train_for(model: nn.Module, bundle, seconds: float, lr: float) -> tuple[float, int]:
    """Train for ``seconds`` of wall-clock time; validation accuracy and the steps taken."""
    torch.manual_seed(0)
    loader = bundle.loader("train", batch_size=64, seed=0, drop_last=True)
    xv, yv = bundle.val.batch(range(len(bundle.val)))
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    steps = 0
    start = time.perf_counter()
    elapsed = 0.0
    while elapsed < seconds:
        for images, labels in loader:
            elapsed = time.perf_counter() - start
            if elapsed >= seconds:
                break
            # Cosine decay over the time budget: the step count is not known in advance.
            for group in optimizer.param_groups:
                group["lr"] = lr * 0.5 * (1 + math.cos(math.pi * elapsed / seconds))
            loss = nn.functional.cross_entropy(model(images), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            steps += 1
    model.eval()
    with torch.no_grad():
        accuracy = (model(xv).argmax(1) == yv).float().mean().item()
    return accuracy, steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads; 1 is as fast as 2 for these small layers on the 2-core machine, "
        "and much faster when the other core is busy",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    render_shapes(500)  # warm up
    start = time.perf_counter()
    render_shapes(20_000, size=28, channels=1, seed=0)
    generate_s = time.perf_counter() - start
    print(f"generate 20,000 28x28 images: {generate_s:.3f} s")

    start = time.perf_counter()
    bundle = load_dataset("shapes", train_size=22_000, val_fraction=2_000 / 22_000, seed=0)
    load_s = time.perf_counter() - start
    print(f"load_dataset('shapes') with 22,000 + 4,400 test images: {load_s:.3f} s")

    rate = loader_rate(bundle.train)
    x, y = bundle.train.batch(range(len(bundle.train)))
    rate_pre = loader_rate(TensorDataset(x, y))
    rate_one = loader_rate(_OneByOne(bundle.train), epochs=1)
    print(
        f"DataLoader images/s: batched {rate:,.0f}, pre-normalised TensorDataset "
        f"{rate_pre:,.0f}, one sample at a time {rate_one:,.0f}"
    )

    torch.manual_seed(0)
    lenet_acc, lenet_steps = train_for(lenet(), bundle, args.seconds, lr=2e-3)
    print(f"LeNet-5: {lenet_acc:.4f} after {lenet_steps} steps in {args.seconds:.0f} s")
    torch.manual_seed(0)
    mlp_acc, mlp_steps = train_for(mlp(), bundle, args.seconds, lr=2e-3)
    print(f"MLP:     {mlp_acc:.4f} after {mlp_steps} steps in {args.seconds:.0f} s")

    result = {
        "threads": args.threads,
        "seconds": args.seconds,
        "generate_20k_s": round(generate_s, 3),
        "load_shapes_s": round(load_s, 3),
        "images_per_s_loader": round(rate),
        "images_per_s_prenormalised": round(rate_pre),
        "images_per_s_per_sample": round(rate_one),
        "lenet_val_acc_60s": round(lenet_acc, 4),
        "lenet_steps": lenet_steps,
        "mlp_val_acc_60s": round(mlp_acc, 4),
        "mlp_steps": mlp_steps,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
