"""Datasets: the synthetic shapes, real file formats written here by hand, folders, splits."""

from __future__ import annotations

import gzip
import pickle
import re
import socket
import struct
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from cnnviz.core import zoo
from cnnviz.core.data import (
    SHAPE_CLASSES,
    Augmentation,
    DatasetError,
    MissingDatasetError,
    load_dataset,
    load_dataset_for_model,
    model_data_mismatch,
    shapes_detection,
    shapes_segmentation,
    verify_image_folder,
)
from cnnviz.core.datasets.shapes import render_shapes
from cnnviz.errors import CnnvizError


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if anything tries to reach the network."""

    def refuse(*args, **kwargs):
        pytest.fail(f"network access attempted: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(urllib.request, "urlopen", refuse)


# --------------------------------------------------------------------------- shapes


def test_shapes_same_seed_same_bytes_other_seed_other_bytes():
    a = render_shapes(300, seed=7)
    b = render_shapes(300, seed=7)
    c = render_shapes(300, seed=8)
    assert a.images.tobytes() == b.images.tobytes()
    assert a.masks.tobytes() == b.masks.tobytes()
    assert np.array_equal(a.labels, b.labels)
    assert a.images.tobytes() != c.images.tobytes()
    assert not np.array_equal(a.labels, c.labels)


@pytest.mark.parametrize(("size", "channels"), [(28, 1), (32, 3), (20, 1)])
def test_shapes_shapes_dtypes_and_class_balance(size: int, channels: int):
    n = 1003
    arrays = render_shapes(n, size=size, channels=channels, seed=1)
    assert arrays.images.shape == (n, channels, size, size)
    assert arrays.images.dtype == np.uint8
    assert arrays.masks.shape == (n, size, size)
    assert arrays.masks.dtype == np.uint8
    assert arrays.labels.dtype == np.int64
    counts = np.bincount(arrays.labels, minlength=10)
    assert counts.min() == n // 10 and counts.max() == n // 10 + 1
    # Pixels use most of the range: contrast is not collapsed by the normalisation of colours.
    assert arrays.images.min() < 30 and arrays.images.max() > 225


@pytest.mark.parametrize("channels", [1, 3])
def test_shapes_masks_mark_the_object_pixels(channels: int):
    arrays = render_shapes(400, size=32, channels=channels, seed=3)
    images = arrays.images.astype(np.float32)
    for i in range(len(images)):
        mask = arrays.masks[i]
        # One object: mask values are 0 and the class + 1, and the object is really drawn.
        assert set(np.unique(mask)) == {0, arrays.labels[i] + 1}
        assert (mask > 0).sum() >= 12
        obj = images[i][:, mask > 0].mean(axis=1)
        back = np.median(images[i][:, mask == 0], axis=1)
        # Object and background colours are drawn at least 0.45 * sqrt(C) apart (in [0, 1]
        # units), less the background gradient and the noise.
        assert np.linalg.norm(obj - back) > 0.2 * 255 * np.sqrt(channels), i


def test_shapes_overall_level_and_colour_do_not_tell_the_class():
    for channels in (1, 3):
        arrays = render_shapes(3000, size=28, channels=channels, seed=6)
        per_image = arrays.images.reshape(3000, channels, -1).mean(axis=2) / 255
        overall = per_image.mean(axis=0)
        for k in range(10):
            class_mean = per_image[arrays.labels == k].mean(axis=0)
            # Colours are drawn independently of the class: the class means stay within a few
            # percent of the overall one (300 images per class, per-image spread about 0.2).
            assert np.all(np.abs(class_mean - overall) < 0.05), (channels, k)


def test_shapes_boxes_are_tight_around_the_mask():
    arrays = render_shapes(300, size=28, seed=4)
    for i in range(300):
        ys, xs = np.nonzero(arrays.masks[i])
        x0, y0, x1, y1 = arrays.boxes[i, 0]
        assert (x0, y0, x1, y1) == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)


def test_shapes_detection_boxes_contain_every_visible_object_pixel():
    det = shapes_detection(200, image_size=48, max_objects=3, seed=5)
    assert det.images.shape == (200, 3, 48, 48)
    counts = [len(b) for b in det.boxes]
    assert min(counts) == 1 and max(counts) == 3
    for i in range(200):
        boxes, labels = det.boxes[i], det.labels[i]
        assert boxes.shape == (len(labels), 4)
        assert np.all(boxes[:, 0] < boxes[:, 2]) and np.all(boxes[:, 1] < boxes[:, 3])
        assert np.all(boxes >= 0) and np.all(boxes[:, 2:] <= 48)
        ys, xs = np.nonzero(det.masks[i])
        for y, x in zip(ys, xs, strict=True):
            cls = det.masks[i, y, x] - 1
            inside = (
                (labels == cls)
                & (boxes[:, 0] <= x)
                & (x < boxes[:, 2])
                & (boxes[:, 1] <= y)
                & (y < boxes[:, 3])
            )
            assert inside.any(), (i, x, y)


def test_shapes_segmentation_accessor():
    seg = shapes_segmentation(50, image_size=32, channels=3, seed=2)
    assert seg.images.shape == (50, 3, 32, 32)
    assert seg.masks.shape == (50, 32, 32)
    assert seg.classes == SHAPE_CLASSES and len(seg.classes) == 10
    assert seg.masks.max() <= 10


def test_generating_20k_images_is_fast():
    render_shapes(500)  # warm up numpy's code paths
    start = time.perf_counter()
    render_shapes(20_000, size=28, channels=1, seed=0)
    # Goal: well under 2 s on the 2-core reference machine (about 0.8 s); loose for busy CI.
    assert time.perf_counter() - start < 6.0


# --------------------------------------------------------------------------- bundle


def test_load_shapes_bundle():
    bundle = load_dataset("shapes", train_size=1000, val_fraction=0.2, seed=3)
    assert bundle.name == "shapes28"
    assert bundle.input_shape == (1, 28, 28)
    assert bundle.classes == SHAPE_CLASSES
    assert (len(bundle.train), len(bundle.val)) == (800, 200)
    image, label = bundle.train[0]
    assert image.dtype == torch.float32 and image.shape == (1, 28, 28)
    assert isinstance(label, int) and 0 <= label < 10
    # Normalised with the statistics of the training split itself.
    x, _ = bundle.train.batch(range(len(bundle.train)))
    assert abs(x.mean().item()) < 1e-3 and abs(x.std().item() - 1) < 1e-3
    # De-normalising gives back the stored pixels.
    shown = bundle.to_display(x[:5])
    assert shown.shape == (5, 28, 28, 1) and shown.dtype == np.uint8
    assert np.array_equal(shown, bundle.train.raw_images(range(5)))

    colour = load_dataset("shapes32", train_size=200)
    assert colour.input_shape == (3, 32, 32) and len(colour.mean) == 3
    assert colour.train[0][0].shape == (3, 32, 32)


def test_split_is_deterministic_disjoint_and_seeded():
    a = load_dataset("shapes", train_size=500, seed=1)
    b = load_dataset("shapes", train_size=500, seed=1)
    c = load_dataset("shapes", train_size=500, seed=2)
    assert torch.equal(a.train.images, b.train.images)
    assert torch.equal(a.val.images, b.val.images)
    assert not torch.equal(a.val.images, c.val.images)
    train_rows = {bytes(r) for r in a.train.images.numpy()}
    assert not any(bytes(r) in train_rows for r in a.val.images.numpy())
    assert len(a.train) + len(a.val) == 500 and len(a.val) == 50


def test_dataloader_batches_match_single_samples():
    bundle = load_dataset("shapes", train_size=300)
    loader = bundle.loader("val", batch_size=16)
    x, y = next(iter(loader))
    assert x.shape == (16, 1, 28, 28) and x.dtype == torch.float32
    assert y.dtype == torch.int64
    for i in range(16):
        image, label = bundle.val[i]
        assert torch.equal(x[i], image) and y[i].item() == label
    loader = bundle.loader("train", batch_size=32, seed=0)
    assert sum(len(batch[1]) for batch in loader) == len(bundle.train)


def test_augmentation_crops_and_flips():
    images = torch.arange(2 * 3 * 8 * 8, dtype=torch.int64).remainder(251).to(torch.uint8)
    images = images.view(2, 3, 8, 8).repeat(50, 1, 1, 1)
    torch.manual_seed(0)
    flipped = Augmentation(padding=0, hflip=True)(images)
    is_same = (flipped == images).flatten(1).all(1)
    is_flip = (flipped == images.flip(-1)).flatten(1).all(1)
    assert torch.all(is_same | is_flip) and is_same.any() and is_flip.any()
    cropped = Augmentation(padding=2)(images)
    assert cropped.shape == images.shape
    assert not torch.equal(cropped, images)
    # Every crop is a window of the zero-padded image.
    padded = torch.nn.functional.pad(images, (2, 2, 2, 2))
    for i in range(10):
        windows = [padded[i, :, dy : dy + 8, dx : dx + 8] for dy in range(5) for dx in range(5)]
        assert any(torch.equal(cropped[i], w) for w in windows)

    bundle = load_dataset("shapes", train_size=200, augment=True)
    assert bundle.train.augment is not None and bundle.val.augment is None
    torch.manual_seed(1)
    first = bundle.train[0][0]
    torch.manual_seed(1)
    assert torch.equal(first, bundle.train[0][0])


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"name": "imagenet-21k"}, "unknown data set"),
        ({"name": "shapes", "val_fraction": 0.0}, "val_fraction"),
        ({"name": "shapes", "val_fraction": 1.0}, "val_fraction"),
        ({"name": "shapes", "val_fraction": -0.5}, "val_fraction"),
        ({"name": "shapes", "image_size": -28}, "image_size"),
        ({"name": "shapes", "image_size": 0}, "image_size"),
        ({"name": "shapes", "channels": 2}, "channels"),
        ({"name": "shapes", "train_size": -5}, "train_size"),
        ({"name": "shapes", "seed": -1}, "seed"),
        ({"name": "shapes", "normalization": "whatever"}, "normalization"),
        ({"name": "shapes", "normalization": "known"}, "known"),
        ({"name": "shapes", "train_size": 3, "val_fraction": 0.01}, "split"),
        ({"name": ""}, "name"),
    ],
)
def test_bad_parameters_give_dataset_error(kwargs: dict, words: str):
    with pytest.raises(DatasetError, match=words):
        load_dataset(**kwargs)
    assert issubclass(DatasetError, CnnvizError)


# --------------------------------------------------------------------------- MNIST, CIFAR


def _idx_images(images: np.ndarray) -> bytes:
    # idx3: magic 2051 (0x00000803: unsigned byte, 3 dimensions), then big-endian sizes.
    n, h, w = images.shape
    return struct.pack(">iiii", 2051, n, h, w) + images.astype(np.uint8).tobytes()


def _idx_labels(labels: np.ndarray) -> bytes:
    return struct.pack(">ii", 2049, len(labels)) + labels.astype(np.uint8).tobytes()


def _write_mnist(raw: Path, compress: bool, seed: int) -> dict[str, np.ndarray]:
    raw.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    out = {}
    for prefix, n in (("train", 40), ("t10k", 12)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, n).astype(np.uint8)
        out[prefix] = (images, labels)
        for name, payload in (
            (f"{prefix}-images-idx3-ubyte", _idx_images(images)),
            (f"{prefix}-labels-idx1-ubyte", _idx_labels(labels)),
        ):
            if compress:
                (raw / (name + ".gz")).write_bytes(gzip.compress(payload))
            else:
                (raw / name).write_bytes(payload)
    return out


@pytest.mark.parametrize(
    ("name", "folder", "compress"),
    [
        ("mnist", "MNIST", False),
        ("mnist", "MNIST", True),
        ("fashion-mnist", "FashionMNIST", False),
        ("fashion-mnist", "FashionMNIST", True),
    ],
)
def test_mnist_idx_files_load_with_the_values_written(
    tmp_path: Path, no_network: None, name: str, folder: str, compress: bool
):
    written = _write_mnist(tmp_path / folder / "raw", compress, seed=11)
    bundle = load_dataset(name, tmp_path, val_fraction=0.25, normalization="none")
    assert bundle.input_shape == (1, 28, 28)
    assert len(bundle.classes) == 10
    images, labels = written["train"]
    # Train and validation together are the training files, in some order: match them up.
    got = np.concatenate([bundle.train.raw_images(), bundle.val.raw_images()])[..., 0]
    got_labels = np.concatenate([bundle.train.labels.numpy(), bundle.val.labels.numpy()])
    order = {images[i].tobytes(): i for i in range(len(images))}
    assert sorted(order[g.tobytes()] for g in got) == list(range(40))
    for g, lab in zip(got, got_labels, strict=True):
        assert lab == labels[order[g.tobytes()]]
    # With normalization "none" the tensors are the pixels / 255.
    x, y = bundle.val[0]
    assert torch.allclose(x[0] * 255, torch.from_numpy(got[len(bundle.train)]).float())
    test_images, test_labels = written["t10k"]
    assert np.array_equal(bundle.test.raw_images()[..., 0], test_images)
    assert np.array_equal(bundle.test.labels.numpy(), test_labels)


def test_mnist_known_normalization_and_resize(tmp_path: Path, no_network: None):
    _write_mnist(tmp_path / "MNIST" / "raw", False, seed=1)
    bundle = load_dataset("mnist", tmp_path, normalization="known")
    assert bundle.mean == (0.1307,) and bundle.std == (0.3081,)
    bigger = load_dataset("mnist", tmp_path, image_size=32, channels=3, train_size=20)
    assert bigger.input_shape == (3, 32, 32)
    assert len(bigger.train) + len(bigger.val) == 20
    assert bigger.train[0][0].shape == (3, 32, 32)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("mnist", ["MNIST/raw/train-images-idx3-ubyte", "MNIST/raw/t10k-labels-idx1-ubyte"]),
        ("fashion-mnist", ["FashionMNIST/raw/train-labels-idx1-ubyte"]),
        ("cifar10", ["cifar-10-batches-py/data_batch_1", "cifar-10-batches-py/test_batch"]),
    ],
)
def test_missing_files_name_the_expected_paths_and_download_nothing(
    tmp_path: Path, no_network: None, name: str, expected: list[str]
):
    with pytest.raises(DatasetError) as info:
        load_dataset(name, tmp_path)
    message = str(info.value)
    for rel in expected:
        assert str(tmp_path / rel) in message
    assert "download=True" in message
    assert list(tmp_path.iterdir()) == [], "a failed load must leave the folder as it was"


def test_download_true_fetches_nothing_when_the_files_are_there(tmp_path: Path, no_network: None):
    _write_mnist(tmp_path / "MNIST" / "raw", False, seed=5)
    _write_cifar(tmp_path / "cifar-10-batches-py", seed=5)
    assert len(load_dataset("mnist", tmp_path, download=True).test) == 12
    assert len(load_dataset("cifar10", tmp_path, download=True).test) == 6


@pytest.mark.parametrize("name", ["mnist", "cifar10"])
def test_failed_download_gives_dataset_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
):
    def offline(*args, **kwargs):
        raise OSError("network is unreachable (test)")

    monkeypatch.setattr(socket.socket, "connect", offline)
    monkeypatch.setattr(socket, "create_connection", offline)
    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(DatasetError, match="download"):
        load_dataset(name, tmp_path, download=True)


def test_corrupt_idx_file_gives_dataset_error(tmp_path: Path, no_network: None):
    raw = tmp_path / "MNIST" / "raw"
    _write_mnist(raw, False, seed=2)
    (raw / "train-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x03garbage")
    with pytest.raises(DatasetError, match="MNIST"):
        load_dataset("mnist", tmp_path)


def _write_cifar(folder: Path, seed: int) -> dict[str, tuple[np.ndarray, list[int]]]:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    batches = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        # Images as (N, 32, 32, 3) pictures, stored as the format says: each row 1024 red,
        # then 1024 green, then 1024 blue values, each plane row by row.
        pictures = rng.integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)
        rows = np.concatenate([pictures[..., c].reshape(6, 1024) for c in range(3)], axis=1)
        labels = [int(v) for v in rng.integers(0, 10, 6)]
        with open(folder / name, "wb") as f:
            pickle.dump({b"batch_label": name.encode(), b"data": rows, b"labels": labels}, f)
        batches[name] = (pictures, labels)
    names = [
        b"plane",
        b"car",
        b"bird",
        b"cat",
        b"deer",
        b"dog",
        b"frog",
        b"horse",
        b"ship",
        b"lorry",
    ]
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": names, b"num_vis": 3072}, f)
    return batches


def test_cifar10_batches_load_with_the_pictures_written(tmp_path: Path, no_network: None):
    batches = _write_cifar(tmp_path / "cifar-10-batches-py", seed=3)
    bundle = load_dataset("cifar10", tmp_path, val_fraction=0.2, normalization="none")
    assert bundle.input_shape == (3, 32, 32)
    assert bundle.classes[1] == "car" and bundle.classes[9] == "lorry"
    pictures = np.concatenate([batches[f"data_batch_{i}"][0] for i in range(1, 6)])
    labels = sum((batches[f"data_batch_{i}"][1] for i in range(1, 6)), [])
    got = np.concatenate([bundle.train.raw_images(), bundle.val.raw_images()])
    got_labels = np.concatenate([bundle.train.labels.numpy(), bundle.val.labels.numpy()])
    order = {pictures[i].tobytes(): i for i in range(len(pictures))}
    assert sorted(order[g.tobytes()] for g in got) == list(range(30))
    for g, lab in zip(got, got_labels, strict=True):
        assert lab == labels[order[g.tobytes()]]
    assert np.array_equal(bundle.test.raw_images(), batches["test_batch"][0])
    # The red channel of the tensor is the first 1024 values of the row.
    x, _ = bundle.test[0]
    red = torch.from_numpy(batches["test_batch"][0][0, :, :, 0])
    assert torch.equal((x[0] * 255).round().to(torch.uint8), red)
    known = load_dataset("cifar10", tmp_path, normalization="known")
    assert known.mean == (0.4914, 0.4822, 0.4465)


def test_cifar10_unreadable_batch_is_named(tmp_path: Path, no_network: None):
    folder = tmp_path / "cifar-10-batches-py"
    _write_cifar(folder, seed=4)
    (folder / "data_batch_3").write_bytes(b"not a pickle")
    with pytest.raises(DatasetError, match="data_batch_3"):
        load_dataset("cifar10", tmp_path)


class _RunsCode:
    """Unpickling this calls os.system: what a crafted dataset file could do."""

    def __reduce__(self):
        import os

        return (os.system, ("touch pwned",))


def test_cifar10_batch_that_would_run_code_is_refused(
    tmp_path: Path, no_network: None, monkeypatch: pytest.MonkeyPatch
):
    folder = tmp_path / "cifar-10-batches-py"
    _write_cifar(folder, seed=5)
    with open(folder / "data_batch_2", "wb") as f:
        pickle.dump({b"data": _RunsCode(), b"labels": [0]}, f)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DatasetError, match=r"data_batch_2.*refused to load (posix|os)\.system"):
        load_dataset("cifar10", tmp_path)
    assert not (tmp_path / "pwned").exists()


# --------------------------------------------------------------------------- folders


def _write_folder(root: Path) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    for cls, level in (("cats", 40), ("dogs", 200)):
        (root / cls).mkdir(parents=True)
        for i in range(6):
            pixels = np.clip(rng.normal(level, 10, (10, 12, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / cls / f"{i}.png")


def test_image_folder_loads_two_classes(tmp_path: Path):
    _write_folder(tmp_path)
    bundle = load_dataset(str(tmp_path), image_size=16, val_fraction=0.25)
    assert bundle.classes == ["cats", "dogs"]
    assert bundle.input_shape == (3, 16, 16)
    assert len(bundle.train) + len(bundle.val) == 12
    raw = bundle.train.raw_images()
    for i in range(len(bundle.train)):
        image, label = bundle.train[i]
        assert image.shape == (3, 16, 16)
        # Class 0 was drawn dark, class 1 bright.
        assert (raw[i].mean() < 120) == (label == 0)
    assert bundle.train.verify() == []
    grey = load_dataset(tmp_path, image_size=8, channels=1)
    assert grey.train[0][0].shape == (1, 8, 8)


def test_corrupt_image_in_folder_is_named(tmp_path: Path):
    _write_folder(tmp_path)
    bad = tmp_path / "dogs" / "broken.png"
    bad.write_bytes(np.random.default_rng(1).integers(0, 256, 300, dtype=np.uint8).tobytes())
    assert [p for p, _ in verify_image_folder(tmp_path)] == [bad]
    # Computing the normalisation reads the images: the error names the file, no PIL traceback.
    with pytest.raises(DatasetError, match="broken.png"):
        load_dataset(tmp_path)
    bundle = load_dataset(tmp_path, normalization="none", val_fraction=0.5)
    splits = [bundle.train, bundle.val]
    assert sum(len(s.verify()) for s in splits) == 1
    with pytest.raises(DatasetError, match=re.escape(str(bad))):
        for split in splits:
            for i in range(len(split)):
                split[i]


def test_folder_without_class_folders(tmp_path: Path):
    with pytest.raises(DatasetError, match="sub-folder"):
        load_dataset(tmp_path)


# --------------------------------------------------------------------------- the point of it


def _lenet() -> nn.Module:
    """The app's own LeNet-5 (zoo, teaching size: 1x28x28, padding 2 on C1)."""
    return zoo.build("lenet5", size="teaching")[0]


def _mlp() -> nn.Module:
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(784, 72),
        nn.ReLU(),
        nn.Linear(72, 48),
        nn.ReLU(),
        nn.Linear(48, 10),
    )


def _train_and_score(model: nn.Module, bundle, steps: int, lr: float) -> float:
    torch.manual_seed(0)
    x, y = bundle.train.batch(range(len(bundle.train)))
    xv, yv = bundle.val.batch(range(len(bundle.val)))
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(0)
    step = 0
    while step < steps:
        order = torch.randperm(len(x), generator=generator)
        for start in range(0, len(x) - 63, 64):
            idx = order[start : start + 64]
            loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            step += 1
            if step == steps:
                break
    with torch.no_grad():
        return (model(xv).argmax(1) == yv).float().mean().item()


@pytest.mark.slow
def test_a_cnn_clearly_beats_an_mlp_of_the_same_size_on_shapes():
    # Measured: LeNet 0.927, MLP 0.544 after 600 steps of 64 images; 15-30 s on 2 busy cores.
    threads = torch.get_num_threads()
    # One thread: these layers are too small to gain from more, and a busy machine hurts less.
    torch.set_num_threads(1)
    try:
        bundle = load_dataset("shapes", train_size=9000, val_fraction=1 / 9, seed=0)
        torch.manual_seed(0)
        cnn, mlp = _lenet(), _mlp()
        n_cnn = sum(p.numel() for p in cnn.parameters())
        n_mlp = sum(p.numel() for p in mlp.parameters())
        assert abs(n_cnn - n_mlp) / n_cnn < 0.05  # 61,706 against 60,514
        cnn_acc = _train_and_score(cnn, bundle, steps=600, lr=2e-3)
        mlp_acc = _train_and_score(mlp, bundle, steps=600, lr=1e-3)
    finally:
        torch.set_num_threads(threads)
    assert cnn_acc >= 0.85, (cnn_acc, mlp_acc)
    assert cnn_acc - mlp_acc >= 0.15, (cnn_acc, mlp_acc)


# --------------------------------------------------------------------------- fitting a model


@pytest.mark.parametrize(("shape", "name"), [((1, 28, 28), "shapes28"), ((3, 32, 32), "shapes32")])
def test_shapes_for_a_model_picks_the_variant_of_its_input(shape, name):
    bundle = load_dataset_for_model("shapes", shape, train_size=200)
    assert bundle.name == name
    assert bundle.input_shape == shape
    assert tuple(bundle.train[0][0].shape) == shape


def test_shapes_for_another_input_are_drawn_at_that_size_with_a_smaller_pool():
    bundle = load_dataset_for_model("shapes", (3, 64, 64))
    assert bundle.input_shape == (3, 64, 64)
    # 12,000 colour 32x32 images' worth of pixels: 3,000 images of 64x64.
    assert len(bundle.train) + len(bundle.val) == 12_000 * 32 * 32 // (64 * 64)


def test_a_mismatch_is_named_before_any_file_is_read(tmp_path: Path, no_network: None):
    with pytest.raises(DatasetError) as info:
        load_dataset_for_model("cifar10", (1, 28, 28), tmp_path)
    assert not isinstance(info.value, MissingDatasetError)
    assert "CIFAR-10 images are 3x32x32" in str(info.value)
    assert "takes 1x28x28" in str(info.value)
    with pytest.raises(DatasetError, match="square images with 1 or 3 channels"):
        load_dataset_for_model("shapes", (2, 28, 28))


def test_missing_files_are_a_missing_dataset_error_listing_them(tmp_path: Path, no_network: None):
    with pytest.raises(MissingDatasetError) as info:
        load_dataset_for_model("mnist", (1, 28, 28), tmp_path)
    assert tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte" in info.value.missing


def test_fit_resizes_and_converts_to_the_model_input(tmp_path: Path, no_network: None):
    written = _write_mnist(tmp_path / "MNIST" / "raw", False, seed=3)
    bundle = load_dataset_for_model("mnist", (3, 32, 32), tmp_path, fit=True, train_size=None)
    assert bundle.input_shape == (3, 32, 32)
    raw = bundle.test.raw_images([0])[0]  # uint8 (H, W, C) as stored
    assert raw.shape == (32, 32, 3)
    # Grey repeated to three channels; the resize is torch's antialiased bilinear one.
    expected = torch.nn.functional.interpolate(
        torch.from_numpy(written["t10k"][0][:1, None]).float(),
        size=(32, 32),
        mode="bilinear",
        antialias=True,
        align_corners=False,
    )[0, 0]
    assert np.array_equal(raw[..., 0], raw[..., 2])
    assert np.abs(raw[..., 0].astype(float) - expected.numpy()).max() <= 1.0


def test_model_data_mismatch_needs_one_score_per_class():
    bundle = load_dataset_for_model("shapes", (1, 28, 28), train_size=100)
    assert model_data_mismatch((10,), bundle) is None
    assert model_data_mismatch((1000,), bundle) is None
    assert "5 outputs but shapes28 has 10 classes" in model_data_mismatch((5,), bundle)
    assert "needs one score per class" in model_data_mismatch((10, 7, 7), bundle)
    assert model_data_mismatch(None, bundle) is None
