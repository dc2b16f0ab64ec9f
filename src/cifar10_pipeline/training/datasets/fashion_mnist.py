"""Fashion-MNIST: the four idx files (plain or gzipped), by default from Debian's dataset-fashion-mnist."""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np

from cifar10_pipeline.training.datasets.base import DataError, Dataset, check_labels, make_dataset

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"  # where Debian's dataset-fashion-mnist installs it
FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip


def _read_idx(root: Path, stem: str, ndim: int) -> np.ndarray:
    """Read an unsigned-byte idx file (``stem`` or ``stem.gz``) with ``ndim`` dimensions into a uint8 array."""
    path = next((p for p in (root / stem, root / f"{stem}.gz") if p.is_file()), None)
    if path is None:
        raise DataError(
            f"Fashion-MNIST file {root / stem}[.gz] is missing. Install it with "
            f"`apt-get install dataset-fashion-mnist` (which fills {FASHION_MNIST_DIR}), "
            "or pass a data_dir holding the four idx files."
        )
    try:
        with (gzip.open if path.suffix == ".gz" else open)(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"{path} cannot be read ({e}); reinstall dataset-fashion-mnist or replace the file") from e

    # header: 0x00 0x00, type code 0x08 (unsigned byte), number of dimensions, then one big-endian uint32 per dimension
    expected_magic = 0x0800 + ndim
    header = 4 + 4 * ndim
    magic = int.from_bytes(raw[:4], "big")
    if len(raw) < header or magic != expected_magic:
        raise DataError(
            f"{path} starts with magic number {magic:#010x}, expected {expected_magic:#010x} "
            f"(unsigned-byte idx with {ndim} dimensions): it is not the Fashion-MNIST file it is named after"
        )
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    if len(raw) - header != int(np.prod(dims)):
        raise DataError(
            f"{path} declares shape {dims} ({int(np.prod(dims))} bytes) but holds {len(raw) - header} bytes of data: "
            "it is truncated or corrupt; reinstall dataset-fashion-mnist or replace the file"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims).copy()  # copy: writable, owns its memory


def _read_idx_split(root: Path, prefix: str) -> tuple[np.ndarray, np.ndarray]:
    """``train`` or ``t10k`` -> uint8 images [N, H, W, 1] and int64 labels [N]."""
    images = _read_idx(root, f"{prefix}-images-idx3-ubyte", 3)
    labels = _read_idx(root, f"{prefix}-labels-idx1-ubyte", 1).astype(np.int64)
    if len(images) != len(labels):
        raise DataError(
            f"{root / prefix}-images-idx3-ubyte has {len(images)} images but {prefix}-labels-idx1-ubyte has "
            f"{len(labels)} labels: the files do not belong together; reinstall dataset-fashion-mnist or replace them"
        )
    check_labels(labels, len(FASHION_MNIST_CLASSES), root / f"{prefix}-labels-idx1-ubyte")
    return images[..., None], labels


def load_fashion_mnist(root: Path) -> Dataset:
    train_images, train_labels = _read_idx_split(root, "train")
    test_images, test_labels = _read_idx_split(root, "t10k")
    return make_dataset("fashion-mnist", train_images, train_labels, test_images, test_labels, FASHION_MNIST_CLASSES)
