"""A procedural 10-class RGB shape set made from the seed: offline, for the quickstart and the tests."""

from __future__ import annotations

import numpy as np

from cifar10_pipeline.training.datasets.base import Dataset, make_dataset


def _patch(dx: np.ndarray, dy: np.ndarray, r: np.ndarray) -> np.ndarray:
    """The square patch of half-width r that the textured classes are drawn in."""
    return np.maximum(np.abs(dx), np.abs(dy)) <= r


def _bands(t: np.ndarray, width: np.ndarray) -> np.ndarray:
    """Alternating bands of the given width (pixels) along the coordinate t."""
    return np.floor(t / width) % 2 == 0


# class name -> mask (bool [k, S, S]) from the pixel offsets to the shape centre dx, dy [k, S, S], the radius r and
# the stripe width w [k, 1, 1], all in pixels
_SHAPES = {
    "disc": lambda dx, dy, r, w: dx**2 + dy**2 <= r**2,
    "square": lambda dx, dy, r, w: _patch(dx, dy, 0.8 * r),
    "triangle": lambda dx, dy, r, w: (dy <= 0.7 * r) & (2 * np.abs(dx) <= dy + r),  # apex up at -r, base at 0.7r
    "ring": lambda dx, dy, r, w: ((0.55 * r) ** 2 <= dx**2 + dy**2) & (dx**2 + dy**2 <= r**2),
    "cross": lambda dx, dy, r, w: _patch(dx, dy, r) & (np.minimum(np.abs(dx), np.abs(dy)) <= 0.3 * r),
    "horizontal stripes": lambda dx, dy, r, w: _patch(dx, dy, r) & _bands(dy, w),
    "vertical stripes": lambda dx, dy, r, w: _patch(dx, dy, r) & _bands(dx, w),
    "diagonal stripes": lambda dx, dy, r, w: _patch(dx, dy, r) & _bands((dx + dy) / np.sqrt(2), w),
    "diamond": lambda dx, dy, r, w: np.abs(dx) + np.abs(dy) <= r,
    "checkerboard": lambda dx, dy, r, w: _patch(dx, dy, r) & (_bands(dx, w) == _bands(dy, w)),
}
SYNTHETIC_CLASSES = tuple(_SHAPES)


def make_synthetic(seed: int = 0, n_train: int = 8000, n_test: int = 2000, side: int = 32) -> Dataset:
    """A procedurally drawn 10-class RGB shape set (``SYNTHETIC_CLASSES``), identical for identical arguments.

    One shape per image, with a random colour, centre, radius and stripe width, on a random-colour background with
    Gaussian pixel noise. Each split has (near-)equal class counts. 8000 + 2000 images take about a second.
    """
    rng = np.random.default_rng(seed)
    n_classes = len(SYNTHETIC_CLASSES)
    # balanced within each split: labels 0..9 repeated, then shuffled
    labels = np.concatenate([rng.permutation(np.arange(n) % n_classes) for n in (n_train, n_test)])
    n = len(labels)

    # per-image geometry in pixels, [n, 1, 1] to broadcast over the [side, side] grid
    centre_y, centre_x = rng.uniform(0.3 * side, 0.7 * side, size=(2, n, 1, 1)).astype(np.float32)
    radius = rng.uniform(0.18 * side, 0.34 * side, size=(n, 1, 1)).astype(np.float32)  # 5.8 .. 10.9 px at 32
    stripe = rng.integers(2, 4, size=(n, 1, 1)).astype(np.float32)  # stripe / check width, 2 or 3 px
    # colours: every channel of the shape differs from the background by 64..192 levels, so the shape always shows
    background = rng.integers(0, 256, size=(n, 3))
    foreground = (background + rng.integers(64, 193, size=(n, 3))) % 256
    # float32 throughout: the [n, side, side, 3] temporaries dominate the run time
    noise = rng.standard_normal(size=(n, side, side, 3), dtype=np.float32)
    noise *= 12.0  # std of the pixel noise, in pixel units

    grid_y, grid_x = np.mgrid[0:side, 0:side].astype(np.float32) + 0.5  # pixel centres
    mask = np.empty((n, side, side), dtype=bool)
    for label, draw in enumerate(_SHAPES.values()):  # one vectorised call per class, over that class's images
        idx = np.flatnonzero(labels == label)
        mask[idx] = draw(grid_x - centre_x[idx], grid_y - centre_y[idx], radius[idx], stripe[idx])

    noise += np.where(mask[..., None], foreground[:, None, None, :], background[:, None, None, :]).astype(np.float32)
    images = np.clip(np.rint(noise, out=noise), 0, 255, out=noise).astype(np.uint8)
    return make_dataset(
        "synthetic", images[:n_train], labels[:n_train], images[n_train:], labels[n_train:], SYNTHETIC_CLASSES
    )
