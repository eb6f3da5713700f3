"""The embedded "shapes" data set: ten kinds of shapes, strokes and textures, drawn in numpy.

Every image holds one object (detection images may hold several) at a random position, scale and
a small rotation, on a background of random level (grey) or colour with a faint linear gradient,
short random clutter strokes (kept clear of the objects, so they never change what an object
looks like) and pixel noise. Object and background colours are drawn independently (at least a
set distance apart), so neither level nor hue tells the class. What tells the classes apart is
the local structure of the object (curved or straight edges, corners, crossings, stripes,
checks), which may be anywhere in the picture: the case for which convolution and pooling were
made, and where a multilayer perceptron, which must learn every position separately, falls
behind.

Rotations stay within +-20 degrees because several classes are rotations of one another (a plus
turned 45 degrees is an X, horizontal stripes turned 90 degrees are vertical ones). Horizontal
flips change no class (all shapes but the L-corner are mirror-symmetric, and a mirrored L is
still the only L), but they add nothing either, so augmentation is off by default for shapes.

Everything is vectorised: the drawing of each class works on all images of that class at once,
so 20,000 28x28 images take about 0.7 s on the 2-core reference machine.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

__all__ = ["SHAPE_CLASSES", "ShapesArrays", "render_shapes"]

SHAPE_CLASSES: list[str] = [
    "disc",
    "ring",
    "square outline",
    "triangle",
    "plus",
    "x cross",
    "stripes",
    "checkerboard",
    "l corner",
    "chevron",
]

_MaskFn = Callable[[np.ndarray, np.ndarray], np.ndarray]

# Each shape is a predicate on object coordinates (u to the right, v downwards), in units of the
# object's half-size, so it fits in the square |u|, |v| <= 1. Stroke half-widths are ~0.2 so a
# stroke is at least ~2 pixels wide at the smallest scale.
_STROKE = 0.21


def _disc(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return u * u + v * v <= 0.9


def _ring(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    rho2 = u * u + v * v
    return (rho2 <= 1.0) & (rho2 >= 0.58**2)


def _square_outline(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    m = np.maximum(np.abs(u), np.abs(v))
    return (m <= 0.88) & (m >= 0.88 - 2 * _STROKE)


def _triangle(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    # Apex at the top (v = -1), base at v = 0.8: image rows grow downwards.
    return (v <= 0.8) & (v >= -1.0 + 2.0 * np.abs(u))


def _plus(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    au, av = np.abs(u), np.abs(v)
    return ((au <= _STROKE) & (av <= 1.0)) | ((av <= _STROKE) & (au <= 1.0))


def _x_cross(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    # A plus turned by 45 degrees, its arms shortened to stay inside the unit square.
    p = np.abs(u + v) * np.float32(0.7071)
    q = np.abs(u - v) * np.float32(0.7071)
    return ((p <= _STROKE) & (q <= 1.15)) | ((q <= _STROKE) & (p <= 1.15))


def _stripes(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    inside = (np.abs(u) <= 0.9) & (np.abs(v) <= 0.9)
    return inside & (np.floor((v + 0.9) * (5 / 1.8)).astype(np.int32) % 2 == 0)


def _checkerboard(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    inside = (np.abs(u) <= 0.9) & (np.abs(v) <= 0.9)
    cells = np.floor((u + 0.9) * (4 / 1.8)).astype(np.int32)
    cells += np.floor((v + 0.9) * (4 / 1.8)).astype(np.int32)
    return inside & (cells % 2 == 0)


def _l_corner(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    upright = (u >= -0.9) & (u <= -0.9 + 2 * _STROKE) & (np.abs(v) <= 0.9)
    foot = (v <= 0.9) & (v >= 0.9 - 2 * _STROKE) & (np.abs(u) <= 0.9)
    return upright | foot


def _chevron(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    # A "^": a band about the line v = |u| - 0.5 (a stroke of the same width along its normal).
    return (np.abs(u) <= 0.95) & (np.abs(v - np.abs(u) + 0.5) <= _STROKE * 1.414)


_SHAPES: list[_MaskFn] = [
    _disc,
    _ring,
    _square_outline,
    _triangle,
    _plus,
    _x_cross,
    _stripes,
    _checkerboard,
    _l_corner,
    _chevron,
]
assert len(_SHAPES) == len(SHAPE_CLASSES)


@dataclass(frozen=True)
class ShapesArrays:
    """Raw output of :func:`render_shapes`.

    Attributes:
        images: ``(N, C, H, W)`` uint8.
        labels: ``(N,)`` int64, the class of the first object of each image.
        masks: ``(N, H, W)`` uint8; 0 for background, class + 1 where an object is seen.
        boxes: ``(N, K, 4)`` int64 ``(x0, y0, x1, y1)`` per object slot, in pixels with ``x1``,
            ``y1`` exclusive (the pixel ``x`` covers ``[x, x + 1)``); -1 where there is no
            object in the slot.
        box_labels: ``(N, K)`` int64 class of each object slot, -1 where there is none.
    """

    images: np.ndarray
    labels: np.ndarray
    masks: np.ndarray
    boxes: np.ndarray
    box_labels: np.ndarray


def _contrasting_colours(
    rng: np.random.Generator, n: int, channels: int, min_distance: float
) -> tuple[np.ndarray, np.ndarray]:
    """Background and object colours, ``(n, channels)`` in [0, 1], at least ``min_distance`` apart.

    Colours are drawn independently and uniformly, so neither hue nor level says anything about
    the class; pairs that are too alike are drawn again (a few rounds cover nearly all) and the
    rest get the background's opposite.
    """
    back = rng.random((n, channels), dtype=np.float32)
    fore = rng.random((n, channels), dtype=np.float32)
    for _ in range(8):
        close = np.linalg.norm(fore - back, axis=1) < min_distance
        if not close.any():
            break
        fore[close] = rng.random((int(close.sum()), channels), dtype=np.float32)
    close = np.linalg.norm(fore - back, axis=1) < min_distance
    fore[close] = 1.0 - back[close]
    still = np.linalg.norm(fore - back, axis=1) < min_distance
    # Only mid-grey backgrounds are left; push the object to the farther end.
    fore[still] = np.where(back[still] < 0.5, 1.0, 0.0)
    return back, fore


def _object_masks(
    classes: np.ndarray,
    cx: np.ndarray,
    cy: np.ndarray,
    half: np.ndarray,
    angle: np.ndarray,
    size: int,
) -> np.ndarray:
    """``(n, size, size)`` bool masks of one object per image; each class drawn in one batch."""
    n = classes.shape[0]
    masks = np.zeros((n, size, size), dtype=bool)
    grid = np.arange(size, dtype=np.float32) + np.float32(0.5)  # pixel centres
    for k, shape in enumerate(_SHAPES):
        idx = np.flatnonzero(classes == k)
        if idx.size == 0:
            continue
        cos = (np.cos(angle[idx]) / half[idx]).astype(np.float32)[:, None, None]
        sin = (np.sin(angle[idx]) / half[idx]).astype(np.float32)[:, None, None]
        dx = grid[None, None, :] - cx[idx, None, None]
        dy = grid[None, :, None] - cy[idx, None, None]
        u = cos * dx + sin * dy
        v = cos * dy - sin * dx
        masks[idx] = shape(u, v)
    return masks


def _strokes(params: np.ndarray, size: int, centres: np.ndarray, reach: np.ndarray) -> np.ndarray:
    """``(n, size, size)`` bool masks of short straight strokes, one pixel wide.

    Each stroke is drawn as points every half pixel along it, which costs a few points per
    stroke instead of a pass over every pixel of the image.

    Args:
        params: ``(n, strokes, 5)`` float32: centre x, centre y, direction cosine and sine, and
            half-length of each stroke.
        size: Height and width of the image.
        centres: ``(n, k, 2)`` centres ``(x, y)`` of the objects, which the strokes stay away
            from: a stray stroke touching a plus could make it an honest L corner, and its
            label would then be wrong.
        reach: ``(n, k)`` distance to keep from each centre (0 for no object).
    """
    n = params.shape[0]
    steps = int(np.ceil(4 * params[..., 4].max(initial=0.0))) + 1
    t = np.linspace(-1.0, 1.0, steps, dtype=np.float32)
    along = params[..., 4, None] * t  # (n, strokes, steps)
    xs = params[..., 0, None] + params[..., 2, None] * along
    ys = params[..., 1, None] + params[..., 3, None] * along
    keep = (xs >= 0) & (xs < size) & (ys >= 0) & (ys < size)
    for j in range(centres.shape[1]):
        dx = xs - centres[:, j, 0, None, None]
        dy = ys - centres[:, j, 1, None, None]
        keep &= dx * dx + dy * dy > (reach[:, j] ** 2)[:, None, None]
    image = np.broadcast_to(np.arange(n)[:, None, None], xs.shape)
    out = np.zeros((n, size, size), dtype=bool)
    out[image[keep], ys[keep].astype(np.intp), xs[keep].astype(np.intp)] = True
    return out


def _bounding_boxes(obj: np.ndarray) -> np.ndarray:
    """``(n, 4)`` boxes ``(x0, y0, x1, y1)``, ends exclusive, of ``(n, H, W)`` masks, or -1."""
    size_y, size_x = obj.shape[1:]
    cols = obj.any(axis=1)
    rows = obj.any(axis=2)
    x0 = np.argmax(cols, axis=1)
    x1 = size_x - np.argmax(cols[:, ::-1], axis=1)
    y0 = np.argmax(rows, axis=1)
    y1 = size_y - np.argmax(rows[:, ::-1], axis=1)
    boxes = np.stack([x0, y0, x1, y1], axis=1).astype(np.int64)
    boxes[~cols.any(axis=1)] = -1
    return boxes


# Images are drawn in chunks small enough that the float32 work arrays stay in the CPU cache:
# on full arrays the same vectorised code is several times slower. The chunk size is fixed so
# that the random noise, drawn chunk by chunk, does not depend on anything but the seed.
_CHUNK = 256


def render_shapes(
    n: int,
    *,
    size: int = 28,
    channels: int = 1,
    seed: int = 0,
    objects: tuple[int, int] = (1, 1),
    noise: float = 0.07,
    clutter: int = 4,
) -> ShapesArrays:
    """Draw ``n`` shape images, their segmentation masks and bounding boxes.

    Classes are balanced: image ``i`` gets class ``i % 10`` before a seeded shuffle, so every
    class has ``n // 10`` or ``n // 10 + 1`` images. The same arguments give the same bytes.

    Args:
        n: Number of images.
        size: Height and width in pixels (at least 16).
        channels: 1 (grey levels) or 3 (colours; each object and background its own random
            colour).
        seed: Seed of the numpy random generator.
        objects: Least and most number of objects per image; classification uses ``(1, 1)``.
            Further objects are drawn smaller, on top of the first, and may cover it partly.
        noise: Standard deviation of the Gaussian pixel noise, in units of the full range.
        clutter: Number of short random strokes behind the objects in each image.

    Returns:
        The images, labels, masks and boxes.
    """
    rng = np.random.default_rng(seed)
    num_classes = len(SHAPE_CLASSES)
    lo, hi = objects
    slots = hi
    min_distance = 0.45 * float(np.sqrt(channels))

    # Every random choice but the pixel noise is drawn up front, per image and object slot.
    labels = rng.permutation(np.arange(n) % num_classes).astype(np.int64)
    counts = rng.integers(lo, hi + 1, n)
    active = np.arange(slots)[None, :] < counts[:, None]
    classes = rng.integers(0, num_classes, (n, slots)).astype(np.int64)
    classes[:, 0] = labels
    half_range = (0.17, 0.32) if hi == 1 else (0.12, 0.22)
    half = (rng.uniform(*half_range, (n, slots)) * size).astype(np.float32)
    # Keep each centre far enough in that most of the object stays in the picture.
    cx = (half + rng.random((n, slots)) * (size - 2 * half)).astype(np.float32)
    cy = (half + rng.random((n, slots)) * (size - 2 * half)).astype(np.float32)
    angle = rng.uniform(-np.pi / 9, np.pi / 9, (n, slots))
    back, fore0 = _contrasting_colours(rng, n, channels, min_distance)
    colours = np.empty((n, slots, channels), dtype=np.float32)
    colours[:, 0] = fore0
    for slot in range(1, slots):
        _, other = _contrasting_colours(rng, n, channels, min_distance)
        # A further object must also stand out from the background, not just from object one.
        near = np.linalg.norm(other - back, axis=1) < 0.3 * np.sqrt(channels)
        colours[:, slot] = np.where(near[:, None], fore0, other)
    # A faint linear gradient over the background, different in every image, so that a single
    # global threshold cannot separate object from background.
    slope = rng.uniform(-0.25, 0.25, (n, 2)).astype(np.float32)
    stroke_params = np.empty((n, clutter, 5), dtype=np.float32)
    stroke_params[..., 0:2] = rng.uniform(0, size, (n, clutter, 2))
    phi = rng.uniform(0, np.pi, (n, clutter))
    stroke_params[..., 2] = np.cos(phi)
    stroke_params[..., 3] = np.sin(phi)
    stroke_params[..., 4] = rng.uniform(0.06 * size, 0.125 * size, (n, clutter))
    stroke_colour = rng.random((n, channels), dtype=np.float32)
    reach = np.where(active, half * np.float32(1.45) + np.float32(1.5), np.float32(0))
    stroke_mask = _strokes(stroke_params, size, np.stack([cx, cy], axis=2), reach)

    images = np.empty((n, channels, size, size), dtype=np.uint8)
    masks = np.zeros((n, size, size), dtype=np.uint8)
    boxes = np.full((n, slots, 4), -1, dtype=np.int64)
    box_labels = np.where(active, classes, -1)
    grid = (np.arange(size, dtype=np.float32) + np.float32(0.5)) / size - np.float32(0.5)
    for start in range(0, n, _CHUNK):
        part = slice(start, min(n, start + _CHUNK))
        m = part.stop - part.start
        shade = slope[part, 0, None, None] * grid[None, None, :]
        shade = shade + slope[part, 1, None, None] * grid[None, :, None]
        canvas = back[part, :, None, None] + shade[:, None, :, :]
        if clutter > 0:
            canvas = np.where(stroke_mask[part, None], stroke_colour[part, :, None, None], canvas)
        else:
            canvas = np.ascontiguousarray(np.broadcast_to(canvas, (m, channels, size, size)))
        part_masks = masks[part]
        for slot in range(slots):
            idx = np.flatnonzero(active[part, slot])
            if idx.size == 0:
                continue
            rows = idx + start
            cls = classes[rows, slot]
            obj = _object_masks(
                cls, cx[rows, slot], cy[rows, slot], half[rows, slot], angle[rows, slot], size
            )
            canvas[idx] = np.where(obj[:, None], colours[rows, slot, :, None, None], canvas[idx])
            sub = part_masks[idx]
            sub[obj] = 0
            sub += obj.astype(np.uint8) * (cls.astype(np.uint8) + 1)[:, None, None]
            part_masks[idx] = sub
            boxes[rows, slot] = _bounding_boxes(obj)
        canvas += rng.standard_normal(canvas.shape, dtype=np.float32) * np.float32(noise)
        np.clip(canvas, 0.0, 1.0, out=canvas)
        images[part] = (canvas * np.float32(255) + np.float32(0.5)).astype(np.uint8)
    return ShapesArrays(images, labels, masks, boxes, box_labels)
