"""What every data set is: uint8 NHWC images with int64 labels, class names and train-split statistics; and what a
run trains and evaluates on, which is the data set's test split or a validation split held out of its training images.

Framework-neutral on purpose (numpy only), so the PyTorch and the TensorFlow trainers (and the tuner) read
exactly the same pixels, labels and normalisation statistics. Any problem a user can cause raises
``DataError`` with a message that names the offending path or value and says what to do about it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

_STATS_CHUNK = 4096  # images per chunk when computing mean/std


class DataError(Exception):
    """A data problem the user can fix; the message names the path or value at fault and what to do."""


class _Images:
    """What both a Dataset and a TrainingData tell about their images (``train_images``) and ``classes``."""

    train_images: np.ndarray
    classes: tuple[str, ...]

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(H, W, C) of every image."""
        return tuple(self.train_images.shape[1:])

    @property
    def num_classes(self) -> int:
        return len(self.classes)


@dataclass(frozen=True)
class Dataset(_Images):
    """A train/test pair of uint8 NHWC image arrays with int64 labels, class names and train-split statistics."""

    name: str
    train_images: np.ndarray  # uint8 [N, H, W, C]
    train_labels: np.ndarray  # int64 [N], values in [0, num_classes)
    test_images: np.ndarray  # uint8 [M, H, W, C]
    test_labels: np.ndarray  # int64 [M]
    classes: tuple[str, ...]
    mean: tuple[float, ...]  # per channel, pixel units (0..255), over the train split
    std: tuple[float, ...]  # per channel, pixel units

    def __post_init__(self) -> None:
        # a programming error, not a user one: every loader below builds consistent arrays
        for split in ("train", "test"):
            images, labels = getattr(self, f"{split}_images"), getattr(self, f"{split}_labels")
            shapes_ok = images.ndim == 4 and labels.shape == (len(images),)
            if images.dtype != np.uint8 or labels.dtype != np.int64 or not shapes_ok:
                raise ValueError(
                    f"{split} split must be uint8 [N, H, W, C] images with int64 [N] labels, "
                    f"got {images.dtype} {images.shape} and {labels.dtype} {labels.shape}"
                )
        if self.train_images.shape[1:] != self.test_images.shape[1:]:
            raise ValueError(f"train images are {self.image_shape}, test images {self.test_images.shape[1:]}")
        if not len(self.mean) == len(self.std) == self.train_images.shape[-1]:
            raise ValueError(f"mean {self.mean} and std {self.std} need one value per channel")


@dataclass(frozen=True)
class TrainingData(_Images):
    """What a run trains on and scores each epoch and at the end: training images, and the split that evaluates
    them, named by ``eval_split``. Made by ``datasets.prepare_for_training``."""

    name: str  # the data set's
    train_images: np.ndarray  # uint8 [N, H, W, C]
    train_labels: np.ndarray  # int64 [N]
    eval_images: np.ndarray  # uint8 [M, H, W, C]
    eval_labels: np.ndarray  # int64 [M]
    eval_split: str  # "test": the data set's test split; "val": a part held out of its training images (tuning)
    classes: tuple[str, ...]
    # per channel, pixel units, over the training images the split leaves; a sample limit does not change them
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @classmethod
    def on_test(cls, ds: Dataset) -> TrainingData:
        """Train on ``ds``'s train split, evaluate on its test split."""
        return cls(ds.name, ds.train_images, ds.train_labels, ds.test_images, ds.test_labels, "test", ds.classes,
                   ds.mean, ds.std)


def make_dataset(
    name: str,
    train_images: np.ndarray,
    train_labels: np.ndarray,
    test_images: np.ndarray,
    test_labels: np.ndarray,
    classes: tuple[str, ...],
) -> Dataset:
    mean, std = channel_stats(train_images)
    return Dataset(
        name=name,
        train_images=train_images,
        train_labels=train_labels.astype(np.int64, copy=False),
        test_images=test_images,
        test_labels=test_labels.astype(np.int64, copy=False),
        classes=tuple(classes),
        mean=mean,
        std=std,
    )


def channel_stats(images: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and (population) std of uint8 [N, H, W, C] images, in pixel units."""
    channels = images.shape[-1]
    # a histogram of the 256 pixel values per channel gives exact moments, fast and without a float copy of the
    # images (1.2 GB for CIFAR-10); chunked because bincount makes an int64 copy of its input (~32 MB per chunk)
    hist = np.zeros((channels, 256), dtype=np.int64)
    for start in range(0, len(images), _STATS_CHUNK):
        chunk = images[start : start + _STATS_CHUNK]
        for c in range(channels):
            hist[c] += np.bincount(chunk[..., c].ravel(), minlength=256)
    values = np.arange(256, dtype=np.float64)
    count = hist.sum(axis=1)
    mean = hist @ values / count
    std = np.sqrt(np.maximum(hist @ values**2 / count - mean**2, 0.0))
    return tuple(float(m) for m in mean), tuple(float(s) for s in std)


def check_labels(labels: np.ndarray, num_classes: int, source: Path) -> None:
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise DataError(
            f"{source} has labels from {labels.min()} to {labels.max()}, expected 0..{num_classes - 1}; "
            "the file is corrupt or belongs to another dataset"
        )
