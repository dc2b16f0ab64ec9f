"""CIFAR-10's published python format as the tests spell it, independently of the loader: the archive's name, its
six batch files, an md5, and the oracle that turns a batch's rows into images. Shared by the fixtures and tests of
tests/training/datasets/cifar10/."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

CIFAR_BATCHES = ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch")
PER_BATCH = 10  # images per generated CIFAR-10 batch
ARCHIVE = "cifar-10-python.tar.gz"


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def rows_to_nhwc(rows: np.ndarray) -> np.ndarray:
    """Test oracle, written from the format spec: pixel (y, x) of channel c is byte c * 1024 + y * 32 + x."""
    y, x, c = np.meshgrid(np.arange(32), np.arange(32), np.arange(3), indexing="ij")
    return rows[:, c * 1024 + y * 32 + x]  # [N, 32, 32, 3]
