"""Datasets: the embedded synthetic "shapes", MNIST, FashionMNIST, CIFAR-10 and image folders.

One entry point, :func:`load_dataset`, gives a :class:`DatasetBundle`: a training and a
validation split (and a test split where there is one) as torch ``Dataset`` objects that return
``(image, label)`` with ``image`` a normalised float tensor ``C x H x W`` and ``label`` an int,
plus the class names, the input shape and the normalisation constants.

Data sets that fit in memory (shapes, MNIST, FashionMNIST, CIFAR-10) are kept as one uint8 tensor
and normalised on access, a whole batch at a time when the ``DataLoader`` asks for one
(:meth:`InMemoryImageDataset.__getitems__`). Measured with ``benchmarks/dataset.py`` (2 cores,
batch 64, shapes28, one torch thread): about 150,000 images/s, faster than a pre-normalised float
tensor in a plain ``TensorDataset`` (about 85,000: one Python call per sample) while holding a
quarter of the memory (CIFAR-10 as float32 would take 600 MB), and five times the 28,000 images/s
of asking for one sample at a time. LeNet-5 trains at about 60 steps of 64 images a second on
that machine, so the loader is a few percent of a step.

Nothing is downloaded unless asked for with ``download=True``: missing files give a
:class:`DatasetError` that says which files to put where.

Augmentation (``augment=True``) is a random crop after zero padding by an eighth of the image
side, and a random horizontal flip, on the training split only:

========================  ======================  ===========================================
data set                  crop (padding)          horizontal flip
========================  ======================  ===========================================
shapes                    yes                     yes (no class changes under a flip; an L
                                                  corner mirrored is still the only L class)
mnist                     yes                     no (a mirrored digit is not a digit)
fashion-mnist, cifar10    yes                     yes
image folder              yes                     yes
========================  ======================  ===========================================

It is off by default: the shapes are already drawn at random positions, so crops and flips add
little there, and they slow the first epochs of a short demonstration.
"""

from __future__ import annotations

import math
import os
import pickle
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from cnnviz.core.datasets.shapes import SHAPE_CLASSES, ShapesArrays, render_shapes
from cnnviz.errors import CnnvizError

__all__ = [
    "DATASET_NAMES",
    "Augmentation",
    "DatasetBundle",
    "DatasetError",
    "ImageFolderDataset",
    "InMemoryImageDataset",
    "MissingDatasetError",
    "NATIVE_INPUT_SHAPES",
    "SHAPE_CLASSES",
    "ShapesDetection",
    "ShapesSegmentation",
    "load_dataset",
    "load_dataset_for_model",
    "model_data_mismatch",
    "shapes_detection",
    "shapes_segmentation",
    "verify_image_folder",
]


class DatasetError(CnnvizError):
    """A data set cannot be loaded: missing or unreadable files, or bad parameters."""


class MissingDatasetError(DatasetError):
    """The files of MNIST, FashionMNIST or CIFAR-10 are not there; the message lists them.

    Attributes:
        missing: The files expected (for MNIST-like sets, the idx file names without ``.gz``).
    """

    def __init__(self, message: str, missing: Sequence[Path] = ()) -> None:
        super().__init__(message)
        self.missing = tuple(missing)


DATASET_NAMES: tuple[str, ...] = (
    "shapes",
    "shapes28",
    "shapes32",
    "mnist",
    "fashion-mnist",
    "cifar10",
)

# Published per-channel constants, used with ``normalization="known"``.
_KNOWN_STATS: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "mnist": ((0.1307,), (0.3081,)),
    "fashion-mnist": ((0.2860,), (0.3530,)),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
}

_CIFAR10_CLASSES = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
]

_IMAGE_SUFFIXES = {
    ".png",
    ".jpg",
    ".jpeg",
    ".bmp",
    ".gif",
    ".webp",
    ".tif",
    ".tiff",
    ".ppm",
    ".pgm",
}

DEFAULT_SHAPES_SIZE = 12_000
"""Images generated for the shapes pool that is split into training and validation."""

SHAPES_TEST_SEED_OFFSET = 1_000_003
"""The shapes test split is drawn with ``seed + SHAPES_TEST_SEED_OFFSET``: never the same
images as the pool."""


# --------------------------------------------------------------------------- datasets


@dataclass(frozen=True)
class Augmentation:
    """Random crop after zero padding, and random horizontal flip, done on uint8 batches.

    Attributes:
        padding: Pixels of zero padding on each side before a crop of the original size; 0 for
            no crop.
        hflip: Flip each image left-right with probability 1/2.
    """

    padding: int = 0
    hflip: bool = False

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """Augment a ``(B, C, H, W)`` batch; random numbers come from torch's global generator,
        which ``DataLoader`` seeds per worker."""
        batch, channels, height, width = images.shape
        pad = self.padding
        rows = torch.arange(height).expand(batch, height)
        cols = torch.arange(width).expand(batch, width)
        if pad > 0:
            images = torch.nn.functional.pad(images, (pad, pad, pad, pad))
            rows = rows + torch.randint(0, 2 * pad + 1, (batch, 1))
            cols = cols + torch.randint(0, 2 * pad + 1, (batch, 1))
        if self.hflip:
            flip = torch.rand(batch) < 0.5
            cols = torch.where(flip[:, None], cols.flip(1), cols)
        # One gather for the whole batch instead of a Python loop over samples.
        return images[
            torch.arange(batch)[:, None, None, None],
            torch.arange(channels)[None, :, None, None],
            rows[:, None, :, None],
            cols[:, None, None, :],
        ]


class _Normalizer:
    """``(x / 255 - mean) / std`` per channel, folded into one multiply-add."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        std_t = torch.tensor(std, dtype=torch.float32)
        mean_t = torch.tensor(mean, dtype=torch.float32)
        self.scale = (1.0 / (255.0 * std_t)).view(-1, 1, 1)
        self.shift = (-mean_t / std_t).view(-1, 1, 1)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        # Two in-place-friendly steps measure ~3x faster than torch.addcmul with broadcasting.
        return images.to(torch.float32).mul_(self.scale).add_(self.shift)


class InMemoryImageDataset(Dataset):
    """Images held as one uint8 tensor ``(N, C, H, W)``, normalised (and augmented) on access.

    ``dataset[i]`` gives ``(image, label)`` with ``image`` a float ``(C, H, W)`` tensor and
    ``label`` an int. ``DataLoader`` with automatic batching calls :meth:`__getitems__`, which
    treats the whole batch in a few tensor operations instead of one Python call per sample.

    Args:
        images: ``(N, C, H, W)`` uint8.
        labels: ``(N,)`` integer labels.
        mean: Per-channel mean in [0, 1] units.
        std: Per-channel standard deviation in [0, 1] units.
        augment: Augmentation applied to every access, or None.
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        mean: Sequence[float],
        std: Sequence[float],
        augment: Augmentation | None = None,
    ) -> None:
        if images.dtype != torch.uint8 or images.ndim != 4:
            raise DatasetError(
                f"images must be a uint8 (N, C, H, W) tensor, got {images.dtype} "
                f"{tuple(images.shape)}"
            )
        if labels.shape != (images.shape[0],):
            raise DatasetError(
                f"{images.shape[0]} images but labels of shape {tuple(labels.shape)}"
            )
        self.images = images.contiguous()
        self.labels = labels.to(torch.int64)
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)
        self.augment = augment
        self._normalize = _Normalizer(self.mean, self.std)

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image = self.images[index].unsqueeze(0)
        if self.augment is not None:
            image = self.augment(image)
        return self._normalize(image)[0], int(self.labels[index])

    def __getitems__(self, indices: Sequence[int]) -> list[tuple[torch.Tensor, int]]:
        """A batch of samples, computed in one go (used by ``DataLoader``)."""
        images, labels = self.batch(indices)
        return list(zip(images.unbind(0), labels.tolist(), strict=True))

    def batch(self, indices: Sequence[int] | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Images ``(B, C, H, W)`` float and labels ``(B,)`` int64 for ``indices``."""
        idx = torch.as_tensor(indices, dtype=torch.int64)
        # index_select is several times faster than advanced indexing for a batch of rows.
        images = self.images.index_select(0, idx)
        if self.augment is not None:
            images = self.augment(images)
        return self._normalize(images), self.labels.index_select(0, idx)

    def raw_images(self, indices: Sequence[int] | None = None) -> np.ndarray:
        """Stored images, unnormalised and unaugmented, as uint8 ``(N, H, W, C)`` for display."""
        images = self.images if indices is None else self.images[torch.as_tensor(indices)]
        return images.permute(0, 2, 3, 1).numpy().copy()


class ImageFolderDataset(Dataset):
    """Images read from files one by one, resized to a fixed size.

    A file that cannot be read gives a :class:`DatasetError` naming it, when that sample is
    accessed; :meth:`verify` reads every file up front.

    Args:
        samples: ``(path, class index)`` pairs.
        image_size: Height and width every image is resized to.
        channels: 1 (grey) or 3 (RGB).
        mean: Per-channel mean in [0, 1] units.
        std: Per-channel standard deviation in [0, 1] units.
        augment: Augmentation, or None.
    """

    def __init__(
        self,
        samples: Sequence[tuple[Path, int]],
        image_size: int,
        channels: int,
        mean: Sequence[float],
        std: Sequence[float],
        augment: Augmentation | None = None,
    ) -> None:
        self.samples = list(samples)
        self.image_size = image_size
        self.channels = channels
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)
        self.augment = augment
        self._normalize = _Normalizer(self.mean, self.std)

    def __len__(self) -> int:
        return len(self.samples)

    def read(self, index: int) -> torch.Tensor:
        """The image of sample ``index`` as uint8 ``(C, H, W)``, resized, unnormalised."""
        path = self.samples[index][0]
        return _read_image(path, self.image_size, self.channels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image = self.read(index)[None]
        if self.augment is not None:
            image = self.augment(image)
        return self._normalize(image)[0], self.samples[index][1]

    def raw_images(self, indices: Sequence[int] | None = None) -> np.ndarray:
        """Resized, unnormalised images as uint8 ``(N, H, W, C)`` for display."""
        indices = range(len(self)) if indices is None else indices
        return np.stack([self.read(int(i)).permute(1, 2, 0).numpy() for i in indices])

    def verify(self) -> list[tuple[Path, str]]:
        """Read every file; the ``(path, reason)`` of each one that cannot be read."""
        return _verify_files([path for path, _ in self.samples])


def _read_image(path: Path, image_size: int, channels: int) -> torch.Tensor:
    from PIL import Image  # only folders need PIL; keep it off the import path of the rest

    try:
        with Image.open(path) as img:
            img = img.convert("L" if channels == 1 else "RGB")
            if img.size != (image_size, image_size):
                img = img.resize((image_size, image_size), Image.BILINEAR)
            array = np.asarray(img, dtype=np.uint8)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        # PIL raises these for unreadable, truncated or bogus files; the user needs the name.
        raise DatasetError(f"cannot read image {path}: {exc}") from exc
    if array.ndim == 2:
        array = array[:, :, None]
    return torch.from_numpy(array.copy()).permute(2, 0, 1).contiguous()


def _verify_files(paths: Sequence[Path]) -> list[tuple[Path, str]]:
    from PIL import Image

    bad: list[tuple[Path, str]] = []
    for path in paths:
        try:
            with Image.open(path) as img:
                img.load()  # verify() alone misses truncated pixel data; decoding catches it
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
            bad.append((Path(path), str(exc)))
    return bad


# --------------------------------------------------------------------------- bundle


@dataclass
class DatasetBundle:
    """A loaded data set: its splits and what a model and a view need to know about it.

    Attributes:
        name: Canonical name (``shapes28``, ``mnist``, ...) or the folder's path.
        train: Training split (augmented when asked for).
        val: Validation split, never augmented.
        test: Held-out test split where the data set has one, else None.
        classes: Class names; label ``i`` is ``classes[i]``.
        input_shape: ``(C, H, W)`` of one image.
        mean: Per-channel mean the images were normalised with, in [0, 1] units.
        std: Per-channel standard deviation, in [0, 1] units.
    """

    name: str
    train: Dataset
    val: Dataset
    test: Dataset | None
    classes: list[str]
    input_shape: tuple[int, int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @property
    def num_classes(self) -> int:
        """Number of classes."""
        return len(self.classes)

    def denormalize(self, images: torch.Tensor) -> torch.Tensor:
        """Undo the normalisation of ``(C, H, W)`` or ``(B, C, H, W)`` images: values in [0, 1]."""
        mean = torch.tensor(self.mean, dtype=images.dtype, device=images.device).view(-1, 1, 1)
        std = torch.tensor(self.std, dtype=images.dtype, device=images.device).view(-1, 1, 1)
        return (images * std + mean).clamp(0.0, 1.0)

    def to_display(self, images: torch.Tensor) -> np.ndarray:
        """Normalised images to uint8 numpy ``(H, W, C)`` or ``(B, H, W, C)`` for a view."""
        pixels = (self.denormalize(images.detach().cpu()) * 255.0).round().to(torch.uint8)
        return pixels.movedim(-3, -1).numpy()

    def loader(
        self,
        split: str = "train",
        batch_size: int = 64,
        *,
        shuffle: bool | None = None,
        seed: int | None = None,
        drop_last: bool = False,
        num_workers: int = 0,
    ) -> torch.utils.data.DataLoader:
        """A ``DataLoader`` over ``split`` ('train', 'val' or 'test').

        Shuffles the training split by default; ``seed`` fixes the order of the shuffles.
        """
        dataset = {"train": self.train, "val": self.val, "test": self.test}.get(split)
        if dataset is None:
            raise DatasetError(f"data set {self.name!r} has no split {split!r}")
        if batch_size < 1:
            raise DatasetError(f"batch_size must be at least 1, got {batch_size}")
        generator = None
        if seed is not None:
            generator = torch.Generator()
            generator.manual_seed(seed)
        return torch.utils.data.DataLoader(
            dataset,
            batch_size=batch_size,
            shuffle=(split == "train") if shuffle is None else shuffle,
            drop_last=drop_last,
            num_workers=num_workers,
            generator=generator,
        )


# --------------------------------------------------------------------------- synthetic


@dataclass(frozen=True)
class ShapesSegmentation:
    """Shapes images with per-pixel labels.

    Attributes:
        images: uint8 ``(N, C, H, W)``.
        masks: uint8 ``(N, H, W)``; 0 for background, ``class + 1`` on an object's pixels.
        classes: Names of the object classes; mask value ``k`` is ``classes[k - 1]``.
    """

    images: np.ndarray
    masks: np.ndarray
    classes: list[str]


@dataclass(frozen=True)
class ShapesDetection:
    """Shapes images with one or more objects each, and their boxes.

    Attributes:
        images: uint8 ``(N, C, H, W)``.
        boxes: One int64 ``(K_i, 4)`` array per image: ``(x0, y0, x1, y1)`` in pixels, the ends
            exclusive (pixel ``x`` covers ``[x, x + 1)``, as in ``torchvision.ops``), tight
            around each object's whole drawn shape (parts hidden by a later object included).
        labels: One int64 ``(K_i,)`` array per image, class indices into ``classes``.
        masks: uint8 ``(N, H, W)`` as in :class:`ShapesSegmentation` (the visible pixels).
        classes: Names of the object classes.
    """

    images: np.ndarray
    boxes: list[np.ndarray]
    labels: list[np.ndarray]
    masks: np.ndarray
    classes: list[str]


def _check_shapes_args(n: int, image_size: int, channels: int) -> None:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise DatasetError(f"the number of images must be a positive integer, got {n!r}")
    if not isinstance(image_size, (int, np.integer)) or not 16 <= image_size <= 512:
        raise DatasetError(
            f"shapes image_size must be an integer from 16 to 512, got {image_size!r}"
        )
    if channels not in (1, 3):
        raise DatasetError(f"channels must be 1 or 3, got {channels!r}")


def shapes_segmentation(
    n: int = 1000, *, image_size: int = 32, channels: int = 3, seed: int = 0
) -> ShapesSegmentation:
    """Shapes images (one object each) with segmentation masks, for segmentation demos.

    Args:
        n: Number of images.
        image_size: Height and width.
        channels: 1 (grey) or 3 (colour).
        seed: Same seed, same bytes.
    """
    _check_shapes_args(n, image_size, channels)
    arrays = render_shapes(n, size=image_size, channels=channels, seed=seed)
    return ShapesSegmentation(arrays.images, arrays.masks, list(SHAPE_CLASSES))


def shapes_detection(
    n: int = 1000,
    *,
    image_size: int = 64,
    channels: int = 3,
    max_objects: int = 3,
    seed: int = 0,
) -> ShapesDetection:
    """Shapes images with one to ``max_objects`` objects each and their bounding boxes.

    Args:
        n: Number of images.
        image_size: Height and width.
        channels: 1 (grey) or 3 (colour).
        max_objects: Most objects in one image (at least 1).
        seed: Same seed, same bytes.
    """
    _check_shapes_args(n, image_size, channels)
    if not isinstance(max_objects, (int, np.integer)) or not 1 <= max_objects <= 16:
        raise DatasetError(f"max_objects must be an integer from 1 to 16, got {max_objects!r}")
    arrays: ShapesArrays = render_shapes(
        n, size=image_size, channels=channels, seed=seed, objects=(1, int(max_objects))
    )
    present = arrays.box_labels >= 0
    boxes = [arrays.boxes[i][present[i]] for i in range(n)]
    labels = [arrays.box_labels[i][present[i]] for i in range(n)]
    return ShapesDetection(arrays.images, boxes, labels, arrays.masks, list(SHAPE_CLASSES))


# --------------------------------------------------------------------------- loading


def _missing_files_error(
    name: str, root: Path, missing: Sequence[Path], hint: str, suffix: str = ""
) -> MissingDatasetError:
    listed = "\n".join(f"  {p}{suffix}" for p in missing)
    return MissingDatasetError(
        f"{name} files not found under {root}. Put these files there:\n{listed}\n{hint}"
        "Or load it with download=True (the Download button in the app, --download on the "
        "command line) to fetch them when this computer is online.",
        missing,
    )


def _load_mnist_like(name: str, root: Path, download: bool) -> tuple[torch.Tensor, ...]:
    """uint8 ``(N, 1, 28, 28)`` images and labels of the training and test files."""
    from torchvision import datasets
    from torchvision.datasets.utils import extract_archive

    cls = datasets.MNIST if name == "mnist" else datasets.FashionMNIST
    raw = root / cls.__name__ / "raw"
    names = [os.path.splitext(os.path.basename(url))[0] for url, _ in cls.resources]
    if not download:
        missing = []
        for file_name in names:
            target = raw / file_name
            if target.is_file():
                continue
            if (raw / (file_name + ".gz")).is_file():
                # What torchvision's own download does after fetching: unpack next to the .gz.
                try:
                    extract_archive(str(raw / (file_name + ".gz")), str(raw))
                except (OSError, EOFError) as exc:
                    raise DatasetError(f"cannot unpack {raw / (file_name + '.gz')}: {exc}") from exc
                continue
            missing.append(target)
        if missing:
            raise _missing_files_error(
                cls.__name__,
                root,
                missing,
                "(the four idx files, as they come or gzip-compressed with .gz added).\n",
                suffix="(.gz)",
            )
    out = []
    for train in (True, False):
        try:
            ds = cls(str(root), train=train, download=download)
        except (RuntimeError, AssertionError, ValueError, OSError) as exc:
            if download:
                raise DatasetError(f"could not download {cls.__name__} into {root}: {exc}") from exc
            raise DatasetError(
                f"cannot read the {cls.__name__} idx files in {raw}: {exc or type(exc).__name__}"
            ) from exc
        out += [ds.data[:, None].contiguous(), ds.targets.to(torch.int64)]
    return tuple(out)


class _ArraysOnlyUnpickler(pickle.Unpickler):
    """Unpickles plain containers and numpy arrays, and refuses every other global.

    CIFAR's batches are pickles; a plain ``pickle.load`` would run whatever code a crafted file
    names, so only the globals that rebuild a numpy array are let through.
    """

    _ALLOWED = frozenset(
        {
            ("numpy.core.multiarray", "_reconstruct"),
            ("numpy._core.multiarray", "_reconstruct"),
            ("numpy.core.multiarray", "scalar"),
            ("numpy._core.multiarray", "scalar"),
            ("numpy", "ndarray"),
            ("numpy", "dtype"),
        }
    )

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(
            f"refused to load {module}.{name}: a dataset file may hold only arrays and lists"
        )


def _load_pickle(path: Path) -> Any:
    with open(path, "rb") as f:
        # The files are Python 2 pickles; "bytes" keeps their str keys as bytes.
        return _ArraysOnlyUnpickler(f, encoding="bytes").load()


def _read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Images ``(N, 3, 32, 32)`` and labels of one batch file (read with no code execution)."""
    try:
        entry = _load_pickle(path)
        entry = {k.decode() if isinstance(k, bytes) else k: v for k, v in entry.items()}
        data = np.asarray(entry["data"], dtype=np.uint8)
        labels = np.asarray(entry.get("labels", entry.get("fine_labels")), dtype=np.int64)
        # Each row is 1024 red, then 1024 green, then 1024 blue values, each a 32x32 image in
        # row-major order: so it reshapes straight to (N, 3, 32, 32).
        images = data.reshape(-1, 3, 32, 32)
    except (
        OSError,
        pickle.UnpicklingError,
        EOFError,
        KeyError,
        ValueError,
        TypeError,
        AttributeError,
    ) as exc:
        raise DatasetError(f"cannot read the CIFAR-10 batch {path}: {exc!r}") from exc
    if labels.shape != (images.shape[0],):
        raise DatasetError(f"CIFAR-10 batch {path}: {images.shape[0]} images, {labels.size} labels")
    return images, labels


def _load_cifar10(root: Path, download: bool) -> tuple[tuple[torch.Tensor, ...], list[str]]:
    folder = root / "cifar-10-batches-py"
    train_files = [folder / f"data_batch_{i}" for i in range(1, 6)]
    test_file = folder / "test_batch"
    meta_file = folder / "batches.meta"
    missing = [p for p in [*train_files, test_file] if not p.is_file()]
    if download and missing:
        # Only when files are missing: torchvision would fetch the archive again for any file
        # whose MD5 differs from the official one.
        from torchvision import datasets

        try:
            datasets.CIFAR10(str(root), train=True, download=True)
        except (RuntimeError, OSError, ValueError) as exc:
            raise DatasetError(f"could not download CIFAR-10 into {root}: {exc}") from exc
        missing = [p for p in [*train_files, test_file] if not p.is_file()]
    if missing:
        raise _missing_files_error(
            "CIFAR-10",
            root,
            missing,
            "(the 'CIFAR-10 python version' archive, cifar-10-python.tar.gz, unpacked in "
            f"{root}; batches.meta is optional).\n",
        )
    # Read with our own few lines rather than torchvision.datasets.CIFAR10, which refuses any
    # file whose MD5 differs from the official one (a re-saved copy, a small test set).
    parts = [_read_cifar_batch(p) for p in train_files]
    train_x = torch.from_numpy(np.concatenate([p[0] for p in parts]))
    train_y = torch.from_numpy(np.concatenate([p[1] for p in parts]))
    test_x, test_y = (torch.from_numpy(a) for a in _read_cifar_batch(test_file))
    classes = list(_CIFAR10_CLASSES)
    if meta_file.is_file():
        try:
            meta = _load_pickle(meta_file)
            names = meta.get(b"label_names", meta.get("label_names"))
            classes = [n.decode() if isinstance(n, bytes) else str(n) for n in names]
        except (OSError, pickle.UnpicklingError, EOFError, TypeError, AttributeError) as exc:
            raise DatasetError(f"cannot read {meta_file}: {exc!r}") from exc
    return (train_x, train_y, test_x, test_y), classes


def _convert_channels(images: torch.Tensor, channels: int) -> torch.Tensor:
    have = images.shape[1]
    if have == channels:
        return images
    if channels == 3:
        return images.expand(-1, 3, -1, -1).contiguous()
    # ITU-R 601 luma, as PIL's convert("L") uses.
    weights = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    grey = (images.to(torch.float32) * weights).sum(1, keepdim=True)
    return grey.round().clamp(0, 255).to(torch.uint8)


def _resize(images: torch.Tensor, size: int) -> torch.Tensor:
    if images.shape[-1] == size and images.shape[-2] == size:
        return images
    out = torch.empty((images.shape[0], images.shape[1], size, size), dtype=torch.uint8)
    for start in range(0, images.shape[0], 4096):  # bounded float memory for 60,000 images
        part = images[start : start + 4096].to(torch.float32)
        part = torch.nn.functional.interpolate(
            part, size=(size, size), mode="bilinear", antialias=True, align_corners=False
        )
        out[start : start + 4096] = part.round().clamp(0, 255).to(torch.uint8)
    return out


def _channel_stats(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and standard deviation in [0, 1] units, summed in float64 by chunks."""
    channels = images.shape[1]
    total = torch.zeros(channels, dtype=torch.float64)
    total_sq = torch.zeros(channels, dtype=torch.float64)
    for start in range(0, images.shape[0], 8192):
        part = images[start : start + 8192].to(torch.float64).div_(255.0)
        total += part.sum(dim=(0, 2, 3))
        total_sq += part.square().sum(dim=(0, 2, 3))
    count = images.shape[0] * images.shape[2] * images.shape[3]
    mean = total / count
    std = (total_sq / count - mean.square()).clamp_min(0).sqrt().clamp_min(1e-3)
    return tuple(mean.tolist()), tuple(std.tolist())


def _split_indices(n: int, val_fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    n_val = round(n * val_fraction)
    if n_val < 1 or n - n_val < 1:
        raise DatasetError(
            f"cannot split {n} images with val_fraction={val_fraction}: both the training and "
            "the validation split need at least one image"
        )
    generator = torch.Generator()
    generator.manual_seed(seed)
    order = torch.randperm(n, generator=generator)
    return order[n_val:].sort().values, order[:n_val].sort().values


def _resolve_stats(
    normalization: str | tuple[Sequence[float], Sequence[float]],
    known_key: str | None,
    channels: int,
    compute: Any,
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    if isinstance(normalization, tuple):
        mean, std = (tuple(float(v) for v in seq) for seq in normalization)
        if len(mean) != channels or len(std) != channels or min(std) <= 0:
            raise DatasetError(
                f"normalization (mean, std) needs {channels} values each and std > 0, "
                f"got {normalization!r}"
            )
        return mean, std
    if normalization == "none":
        return (0.0,) * channels, (1.0,) * channels
    if normalization == "known":
        stats = _KNOWN_STATS.get(known_key or "")
        if stats is None or len(stats[0]) != channels:
            raise DatasetError(
                "normalization='known' needs mnist, fashion-mnist or cifar10 at their own number "
                "of channels; use 'train' to compute the statistics of the training split"
            )
        return stats
    if normalization == "train":
        return compute()
    raise DatasetError(
        f"unknown normalization {normalization!r}: use 'train', 'known', 'none' or (mean, std)"
    )


def _augmentation(augment: bool, image_size: int, hflip: bool) -> Augmentation | None:
    if not augment:
        return None
    return Augmentation(padding=max(1, image_size // 8), hflip=hflip)


def load_dataset(
    name: str,
    root: str | os.PathLike[str] | None = None,
    *,
    image_size: int | None = None,
    channels: int | None = None,
    train_size: int | None = None,
    val_fraction: float = 0.1,
    seed: int = 0,
    augment: bool = False,
    normalization: str | tuple[Sequence[float], Sequence[float]] = "train",
    download: bool = False,
) -> DatasetBundle:
    """Load a data set by name, or an image folder by path.

    Args:
        name: ``shapes`` (the same as ``shapes28``: grey 1x28x28), ``shapes32`` (colour
            3x32x32), ``mnist``, ``fashion-mnist``, ``cifar10``, or the path of a folder with
            one sub-folder of images per class.
        root: Folder holding the files of MNIST, FashionMNIST or CIFAR-10 (as torchvision lays
            them out: ``<root>/MNIST/raw``, ``<root>/FashionMNIST/raw``,
            ``<root>/cifar-10-batches-py``). Defaults to ``<cnnviz data dir>/datasets``.
            Not used for shapes and folders.
        image_size: Height and width; images are resized to it (bilinear, antialiased). Default:
            the data set's own (28 for shapes28, MNIST and FashionMNIST, 32 for shapes32 and
            CIFAR-10, 32 for folders). Shapes are drawn at this size.
        channels: 1 or 3; grey images are repeated to three channels, colour ones converted to
            grey levels. Default: the data set's own (3 for folders).
        train_size: Images in the pool that is split into training and validation: for shapes
            the number generated (default 12,000); for the others at most this many of the
            training files, a seeded random choice (default all of them).
        val_fraction: Share of the pool held out for validation, in (0, 1).
        seed: Seeds the shapes generator, the choice of ``train_size`` images and the split.
        augment: Random crops (and flips where they keep the class) on the training split;
            see the module's documentation.
        normalization: ``"train"``: per-channel mean and standard deviation of the training
            split (for folders, of up to 500 of its images); ``"known"``: the published
            constants of MNIST, FashionMNIST or CIFAR-10; ``"none"``; or ``(mean, std)``.
        download: Fetch missing MNIST, FashionMNIST or CIFAR-10 files from the internet.

    Returns:
        The bundle of splits and facts about them.

    Raises:
        DatasetError: for an unknown name, a bad parameter, or files missing or unreadable.
    """
    if not isinstance(name, (str, os.PathLike)) or not str(name).strip():
        raise DatasetError(f"a data set name or folder is needed, got {name!r}")
    if image_size is not None and (
        isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1
    ):
        raise DatasetError(f"image_size must be a positive integer, got {image_size!r}")
    if channels is not None and channels not in (1, 3):
        raise DatasetError(f"channels must be 1 or 3, got {channels!r}")
    if train_size is not None and (
        isinstance(train_size, bool) or not isinstance(train_size, int) or train_size < 2
    ):
        raise DatasetError(f"train_size must be an integer of at least 2, got {train_size!r}")
    if not isinstance(val_fraction, (int, float)) or not 0.0 < val_fraction < 1.0:
        raise DatasetError(f"val_fraction must lie strictly between 0 and 1, got {val_fraction!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise DatasetError(f"seed must be a non-negative integer, got {seed!r}")

    key = str(name).strip().lower().replace("_", "-")
    key = {"fashionmnist": "fashion-mnist", "cifar-10": "cifar10", "shapes": "shapes28"}.get(
        key, key
    )
    # Check the normalisation before any work, so a typo does not cost a data set's loading.
    if isinstance(normalization, str) and normalization not in ("train", "known", "none"):
        raise DatasetError(
            f"unknown normalization {normalization!r}: use 'train', 'known', 'none' or (mean, std)"
        )
    if normalization == "known" and key not in _KNOWN_STATS:
        raise DatasetError(
            "normalization='known' needs mnist, fashion-mnist or cifar10; use 'train' to compute "
            "the statistics of the training split"
        )
    if key in ("shapes28", "shapes32"):
        return _load_shapes(
            key, image_size, channels, train_size, val_fraction, seed, augment, normalization
        )
    if key in ("mnist", "fashion-mnist", "cifar10"):
        base = Path(root) if root is not None else _default_root()
        if key == "cifar10":
            tensors, classes = _load_cifar10(base, download)
        else:
            from torchvision import datasets

            tensors = _load_mnist_like(key, base, download)
            classes = list((datasets.MNIST if key == "mnist" else datasets.FashionMNIST).classes)
        return _bundle_from_tensors(
            key,
            tensors,
            classes,
            image_size,
            channels,
            train_size,
            val_fraction,
            seed,
            augment,
            normalization,
            hflip=key != "mnist",
            known_key=key,
        )
    path = Path(os.path.expanduser(str(name)))
    if path.is_dir():
        return _load_folder(
            path, image_size, channels, train_size, val_fraction, seed, augment, normalization
        )
    raise DatasetError(
        f"unknown data set {str(name)!r}: choose one of {', '.join(DATASET_NAMES)}, "
        "or give the path of a folder with one sub-folder of images per class"
    )


def _default_root() -> Path:
    from cnnviz.paths import data_dir

    return data_dir() / "datasets"


def _load_shapes(
    key: str,
    image_size: int | None,
    channels: int | None,
    train_size: int | None,
    val_fraction: float,
    seed: int,
    augment: bool,
    normalization: str | tuple[Sequence[float], Sequence[float]],
) -> DatasetBundle:
    size = image_size or (28 if key == "shapes28" else 32)
    chans = channels or (1 if key == "shapes28" else 3)
    pool = train_size or DEFAULT_SHAPES_SIZE
    _check_shapes_args(pool, size, chans)
    arrays = render_shapes(pool, size=size, channels=chans, seed=seed)
    n_test = max(100, pool // 5)
    test_arrays = render_shapes(
        n_test, size=size, channels=chans, seed=seed + SHAPES_TEST_SEED_OFFSET
    )
    tensors = (
        torch.from_numpy(arrays.images),
        torch.from_numpy(arrays.labels),
        torch.from_numpy(test_arrays.images),
        torch.from_numpy(test_arrays.labels),
    )
    canonical = (
        key
        if (size, chans) == ((28, 1) if key == "shapes28" else (32, 3))
        else (f"{key}-{chans}x{size}x{size}")
    )
    return _bundle_from_tensors(
        canonical,
        tensors,
        list(SHAPE_CLASSES),
        None,
        None,
        None,
        val_fraction,
        seed,
        augment,
        normalization,
        hflip=True,
        known_key=None,
    )


def _bundle_from_tensors(
    name: str,
    tensors: tuple[torch.Tensor, ...],
    classes: list[str],
    image_size: int | None,
    channels: int | None,
    train_size: int | None,
    val_fraction: float,
    seed: int,
    augment: bool,
    normalization: str | tuple[Sequence[float], Sequence[float]],
    *,
    hflip: bool,
    known_key: str | None,
) -> DatasetBundle:
    train_x, train_y, test_x, test_y = tensors
    native = tuple(train_x.shape[1:])
    if train_size is not None and train_size < train_x.shape[0]:
        generator = torch.Generator()
        generator.manual_seed(seed + 1)  # not the split's permutation, so the two are unrelated
        chosen = torch.randperm(train_x.shape[0], generator=generator)[:train_size].sort().values
        train_x, train_y = train_x[chosen], train_y[chosen]
    if channels is not None:
        train_x = _convert_channels(train_x, channels)
        test_x = _convert_channels(test_x, channels)
    if image_size is not None:
        train_x = _resize(train_x, image_size)
        test_x = _resize(test_x, image_size)
    train_idx, val_idx = _split_indices(train_x.shape[0], val_fraction, seed)
    fit_x = train_x[train_idx]
    # "known" constants only describe the data as published, not resized or recoloured.
    unchanged = tuple(train_x.shape[1:]) == native
    mean, std = _resolve_stats(
        normalization,
        known_key if unchanged else None,
        train_x.shape[1],
        lambda: _channel_stats(fit_x),
    )
    size = train_x.shape[-1]
    train = InMemoryImageDataset(
        fit_x, train_y[train_idx], mean, std, _augmentation(augment, size, hflip)
    )
    val = InMemoryImageDataset(train_x[val_idx], train_y[val_idx], mean, std)
    test = InMemoryImageDataset(test_x, test_y, mean, std)
    return DatasetBundle(
        name=name,
        train=train,
        val=val,
        test=test,
        classes=classes,
        input_shape=tuple(train_x.shape[1:]),
        mean=tuple(mean),
        std=tuple(std),
    )


def _folder_samples(root: Path) -> tuple[list[str], list[tuple[Path, int]]]:
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not class_dirs:
        raise DatasetError(
            f"{root} has no sub-folders: put the images of each class in a sub-folder named "
            "after the class"
        )
    samples = []
    classes = []
    for class_dir in class_dirs:
        files = sorted(
            p
            for p in class_dir.rglob("*")
            if p.suffix.lower() in _IMAGE_SUFFIXES and p.is_file() and not p.name.startswith(".")
        )
        if not files:
            continue
        samples += [(p, len(classes)) for p in files]
        classes.append(class_dir.name)
    if len(classes) < 2:
        raise DatasetError(
            f"{root} needs at least two class sub-folders with images "
            f"({', '.join(sorted(_IMAGE_SUFFIXES))}); found {len(classes)}"
        )
    return classes, samples


def verify_image_folder(root: str | os.PathLike[str]) -> list[tuple[Path, str]]:
    """Read every image of a class-per-sub-folder tree; ``(path, reason)`` for each bad one."""
    _, samples = _folder_samples(Path(root))
    return _verify_files([p for p, _ in samples])


def _load_folder(
    root: Path,
    image_size: int | None,
    channels: int | None,
    train_size: int | None,
    val_fraction: float,
    seed: int,
    augment: bool,
    normalization: str | tuple[Sequence[float], Sequence[float]],
) -> DatasetBundle:
    classes, samples = _folder_samples(root)
    size = image_size or 32
    chans = channels or 3
    if train_size is not None and train_size < len(samples):
        generator = torch.Generator()
        generator.manual_seed(seed + 1)
        chosen = torch.randperm(len(samples), generator=generator)[:train_size].sort().values
        samples = [samples[i] for i in chosen.tolist()]
    train_idx, val_idx = _split_indices(len(samples), val_fraction, seed)
    train_samples = [samples[i] for i in train_idx.tolist()]
    val_samples = [samples[i] for i in val_idx.tolist()]

    def compute() -> tuple[tuple[float, ...], tuple[float, ...]]:
        # Reading every file would make opening a large folder slow; 500 images pin the mean
        # and the standard deviation down to well under a percent.
        step = max(1, math.ceil(len(train_samples) / 500))
        images = torch.stack([_read_image(p, size, chans) for p, _ in train_samples[::step]])
        return _channel_stats(images)

    mean, std = _resolve_stats(normalization, None, chans, compute)
    train = ImageFolderDataset(
        train_samples, size, chans, mean, std, _augmentation(augment, size, True)
    )
    val = ImageFolderDataset(val_samples, size, chans, mean, std)
    return DatasetBundle(
        name=str(root),
        train=train,
        val=val,
        test=None,
        classes=classes,
        input_shape=(chans, size, size),
        mean=tuple(mean),
        std=tuple(std),
    )


# --------------------------------------------------------------------------- fitting a model

NATIVE_INPUT_SHAPES: dict[str, tuple[int, int, int]] = {
    "shapes28": (1, 28, 28),
    "shapes32": (3, 32, 32),
    "mnist": (1, 28, 28),
    "fashion-mnist": (1, 28, 28),
    "cifar10": (3, 32, 32),
}
"""``(C, H, W)`` of the named data sets as they come."""

# Shapes drawn at a large model's input size (224x224) would take gigabytes and minutes at
# 12,000 images; the pool gets the pixels of 12,000 colour 32x32 images (drawing time goes with
# the pixels), and at least 1,000 images (150 MB at 3x224x224).
_SHAPES_POOL_BYTES = DEFAULT_SHAPES_SIZE * 3 * 32 * 32

_TITLES = {
    "shapes28": "shapes",
    "shapes32": "shapes",
    "mnist": "MNIST",
    "fashion-mnist": "FashionMNIST",
    "cifar10": "CIFAR-10",
}


def _canonical(name: str) -> str:
    key = str(name).strip().lower().replace("_", "-")
    return {"fashionmnist": "fashion-mnist", "cifar-10": "cifar10", "shapes": "shapes28"}.get(
        key, key
    )


def _shape_text(shape: Sequence[int]) -> str:
    return "x".join(str(int(s)) for s in shape)


def load_dataset_for_model(
    name: str | os.PathLike[str],
    input_shape: Sequence[int] | None,
    root: str | os.PathLike[str] | None = None,
    *,
    fit: bool = False,
    train_size: int | None = None,
    seed: int = 0,
    augment: bool = False,
    download: bool = False,
) -> DatasetBundle:
    """Load a data set in the image shape a model takes, or say clearly why it does not fit.

    The shape is checked before any file is read, so a mismatch is reported at once.

    Args:
        name: As for :func:`load_dataset`. ``shapes`` is drawn at the model's input: the grey
            28x28 set for ``1x28x28``, the colour 32x32 set for ``3x32x32``, and any other
            square input with 1 or 3 channels generated at that size.
        input_shape: The model's ``(C, H, W)``, or None to load the data set as it comes.
        root: Folder of the MNIST, FashionMNIST or CIFAR-10 files.
        fit: Resize MNIST, FashionMNIST or CIFAR-10 images (and convert grey and colour) to
            ``input_shape`` instead of refusing a mismatch. Image folders are always loaded at
            the model's size.
        train_size: Images in the pool split into training and validation (default: all, and
            12,000 shapes, fewer for large inputs).
        seed: Seeds the shapes generator, the choice of images and the split.
        augment: Random crops and flips on the training split.
        download: Fetch missing MNIST, FashionMNIST or CIFAR-10 files.

    Raises:
        DatasetError: The shapes do not fit (the message names both), or the data set cannot be
            loaded (:class:`MissingDatasetError` when files are missing).
    """
    key = _canonical(str(name))
    kwargs: dict[str, Any] = {"train_size": train_size, "seed": seed, "augment": augment}
    if input_shape is None:
        return load_dataset(name, root, download=download, **kwargs)
    shape = tuple(int(s) for s in input_shape)
    square = len(shape) == 3 and shape[0] in (1, 3) and shape[1] == shape[2]
    if key in ("shapes28", "shapes32"):
        if shape in ((1, 28, 28), (3, 32, 32)):
            key = "shapes28" if shape[0] == 1 else "shapes32"
            return load_dataset(key, **kwargs)
        if not square:
            raise DatasetError(
                f"the shapes data set draws square images with 1 or 3 channels; the model "
                f"takes {_shape_text(shape)}: give it an input such as 1x28x28 or 3x32x32"
            )
        if train_size is None:
            per_image = shape[0] * shape[1] * shape[2]
            kwargs["train_size"] = int(
                min(DEFAULT_SHAPES_SIZE, max(1_000, _SHAPES_POOL_BYTES // per_image))
            )
        return load_dataset("shapes28", image_size=shape[1], channels=shape[0], **kwargs)
    if key in NATIVE_INPUT_SHAPES:
        native = NATIVE_INPUT_SHAPES[key]
        if native == shape:
            return load_dataset(key, root, download=download, **kwargs)
        if not square:
            raise DatasetError(
                f"{_TITLES[key]} images are {_shape_text(native)}, the model takes "
                f"{_shape_text(shape)}; images can only be fitted to a square input with 1 or "
                "3 channels"
            )
        if not fit:
            raise DatasetError(
                f"{_TITLES[key]} images are {_shape_text(native)}, but the model takes "
                f"{_shape_text(shape)}. Choose a model made for {_shape_text(native)} images "
                "(or the shapes data set, drawn at any size), or fit the images to the model "
                "(resize and convert grey/colour: 'Fit images to the model' in the app, "
                "--fit-input on the command line)."
            )
        return load_dataset(
            key, root, image_size=shape[1], channels=shape[0], download=download, **kwargs
        )
    if not square:
        raise DatasetError(
            f"an image folder is loaded as square images with 1 or 3 channels; the model "
            f"takes {_shape_text(shape)}"
        )
    return load_dataset(name, image_size=shape[1], channels=shape[0], **kwargs)


def model_data_mismatch(output_shape: Any, bundle: DatasetBundle) -> str | None:
    """Why a model with ``output_shape`` (one sample, from the analysis) cannot learn
    ``bundle``'s classes, or None when it can (or the shape is unknown).

    A model needs one score per class: an output of ``(K,)`` with ``K >= num_classes``.
    """
    if output_shape is None:
        return None
    try:
        dims = tuple(int(s) for s in output_shape)
    except (TypeError, ValueError):
        return None  # several outputs (GoogLeNet's auxiliary heads): the trainer takes the first
    if len(dims) != 1:
        return (
            f"the model's output has shape {_shape_text(dims)}, but training for classification "
            f"needs one score per class (an output of {bundle.num_classes})"
        )
    if dims[0] < bundle.num_classes:
        return (
            f"the model has {dims[0]} outputs but {bundle.name} has {bundle.num_classes} "
            f"classes: make its last layer output {bundle.num_classes} scores"
        )
    return None
