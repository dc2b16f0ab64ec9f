"""Datasets for both trainers, as plain numpy arrays: CIFAR-10, Fashion-MNIST, an image folder, or a synthetic set.

Every loader returns a ``Dataset`` (``base.py``): uint8 images ``[N, H, W, C]`` (C = 3 RGB or 1 gray), int64
labels ``[N]``, the class names, and the per-channel mean/std of the train split in pixel units (0..255).
``load_dataset`` picks the loader by name and brings the images to the config's ``image_size``;
``prepare_for_training`` makes what a run trains and evaluates on (``TrainingData``): the test split or the
validation split, and the sample limits a config asks for.
"""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from tqdm import tqdm

from cifar10_pipeline.contract.images import resize_pixels
from cifar10_pipeline.training.datasets.base import DataError, Dataset, TrainingData, channel_stats, make_dataset
from cifar10_pipeline.training.datasets.cifar10 import load_cifar10
from cifar10_pipeline.training.datasets.fashion_mnist import FASHION_MNIST_DIR, load_fashion_mnist
from cifar10_pipeline.training.datasets.folder import load_folder
from cifar10_pipeline.training.datasets.synthetic import make_synthetic

if TYPE_CHECKING:
    from cifar10_pipeline.training.config import TrainConfig

__all__ = ["DATASETS", "DataError", "Dataset", "TrainingData", "load_dataset", "prepare_for_training",
           "split_validation"]

DATASETS = ("cifar10", "fashion-mnist", "folder", "synthetic")


def load_dataset(
    name: str, data_dir: str | Path | None = None, *, seed: int = 0, download: bool = True, image_size: int = 0
) -> Dataset:
    """Load one of ``DATASETS``.

    data_dir: cifar10 -> ``$CIFAR10_DIR`` or ``data/cifar10`` when None; fashion-mnist -> ``FASHION_MNIST_DIR`` when
    None; folder -> required; synthetic -> ignored. seed only affects ``synthetic``. download only affects
    ``cifar10``: with False, a missing archive is an error instead of a download. image_size (pixels, square):
    folder images are decoded to it (0: 32); the built-in sets keep their native size at 0 (cifar10 and synthetic
    32, fashion-mnist 28) and are resized to it otherwise.
    """
    if name == "cifar10":
        ds = load_cifar10(data_dir, download)
    elif name == "fashion-mnist":
        ds = load_fashion_mnist(Path(data_dir or FASHION_MNIST_DIR))
    elif name == "folder":
        return load_folder(data_dir, image_size)
    elif name == "synthetic":
        ds = make_synthetic(seed)
    else:
        raise DataError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    return _resize_dataset(ds, image_size) if image_size and ds.image_shape[:2] != (image_size, image_size) else ds


def _resize_dataset(ds: Dataset, size: int) -> Dataset:
    """``ds`` with every image resized to ``size`` x ``size`` as the service resizes an upload of it
    (``contract.images.resize_pixels``), so a model trained on it is served the same pixels."""
    shape = (size, size, ds.image_shape[2])
    n_train = len(ds.train_images)
    resized = np.empty((n_train + len(ds.test_images), *shape), dtype=np.uint8)
    bar = tqdm(itertools.chain(ds.train_images, ds.test_images), total=len(resized), unit="image", leave=False,
               desc=f"resizing {ds.name} to {size}x{size}", disable=None)
    for i, image in enumerate(bar):
        resized[i] = resize_pixels(image, shape)
    return make_dataset(ds.name, resized[:n_train], ds.train_labels, resized[n_train:], ds.test_labels, ds.classes)


def split_validation(ds: Dataset, fraction: float, seed: int) -> TrainingData:
    """Hold out ``fraction`` of the train split, stratified by class, as a validation set.

    Trains on the rest and evaluates on the held-out part (``eval_split`` "val"), so hyperparameter tuning never
    sees the real test set. Every class with at least 2 images keeps at least one in each part; mean/std are
    recomputed on the part that trains. Deterministic for a given seed; both parts keep the original image order.
    """
    if not 0.0 < fraction < 1.0:
        raise DataError(f"validation fraction must be between 0 and 1 (exclusive), got {fraction}")
    rng = np.random.default_rng(seed)
    # shuffle, then stable-sort by label: each class becomes one contiguous block in random order, and the first
    # round(fraction * class size) of each block are held out
    order = rng.permutation(len(ds.train_labels))
    order = order[np.argsort(ds.train_labels[order], kind="stable")]
    counts = np.bincount(ds.train_labels, minlength=ds.num_classes)
    # at least one image per class held out, but never a class's last one
    held = np.minimum(np.maximum(np.rint(fraction * counts), 1), np.maximum(counts - 1, 0)).astype(np.int64)
    starts = np.cumsum(counts) - counts  # where each class block begins in `order`
    rank = np.arange(len(order)) - np.repeat(starts, counts)  # position of each image inside its class block
    is_val = np.zeros(len(order), dtype=bool)
    is_val[order] = rank < np.repeat(held, counts)
    if not is_val.any() or is_val.all():
        raise DataError(
            f"cannot hold out {fraction} of {len(is_val)} train images of {ds.name!r}: one part would be empty"
        )
    train_images = ds.train_images[~is_val]
    mean, std = channel_stats(train_images)
    return TrainingData(ds.name, train_images, ds.train_labels[~is_val], ds.train_images[is_val],
                        ds.train_labels[is_val], "val", ds.classes, mean, std)


def prepare_for_training(config: TrainConfig) -> TrainingData:
    """What a trainer trains and evaluates on: the data set, evaluated on a validation split held out of its
    training images when ``config.val_fraction`` > 0 (tuning never sees the test set), else on its test split;
    then the smoke-run sample limits (``max_test_samples`` limits whichever split evaluates)."""
    ds = load_dataset(config.dataset, config.data_dir, seed=config.seed, image_size=config.image_size)
    if config.val_fraction > 0:
        data = split_validation(ds, config.val_fraction, config.seed)
    else:
        data = TrainingData.on_test(ds)
    train_n, eval_n = config.max_train_samples or None, config.max_test_samples or None
    return dataclasses.replace(
        data,
        train_images=data.train_images[:train_n],
        train_labels=data.train_labels[:train_n],
        eval_images=data.eval_images[:eval_n],
        eval_labels=data.eval_labels[:eval_n],
    )
