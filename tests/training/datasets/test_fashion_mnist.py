"""Fashion-MNIST: idx files (gzipped or plain) read exactly, bad files refused by name, and the Debian package."""

import gzip
import struct
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from cifar10_pipeline.contract.images import decode_image
from cifar10_pipeline.training.datasets import DataError, load_dataset
from cifar10_pipeline.training.datasets.fashion_mnist import FASHION_MNIST_CLASSES
from tests.support.images import encode

IDX_FILES = {  # file stem -> (split, what)
    "train-images-idx3-ubyte": ("train", "images"),
    "train-labels-idx1-ubyte": ("train", "labels"),
    "t10k-images-idx3-ubyte": ("test", "images"),
    "t10k-labels-idx1-ubyte": ("test", "labels"),
}


def _idx_bytes(array: np.ndarray, type_code: int = 0x08) -> bytes:
    """idx format: 0x00 0x00, a type code (0x08 = uint8), the number of dimensions, big-endian uint32 dims, data."""
    header = bytes([0, 0, type_code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def _write_idx(path: Path, content: bytes) -> None:
    path.write_bytes(gzip.compress(content) if path.suffix == ".gz" else content)


@pytest.fixture
def fashion(tmp_path):
    """Tiny Fashion-MNIST idx files (6 train, 4 test images of 28x28), gzipped; returns the arrays written."""
    rng = np.random.default_rng(7)
    arrays = {
        ("train", "images"): rng.integers(0, 256, size=(6, 28, 28), dtype=np.uint8),
        ("train", "labels"): rng.integers(0, 10, size=6).astype(np.uint8),
        ("test", "images"): rng.integers(0, 256, size=(4, 28, 28), dtype=np.uint8),
        ("test", "labels"): rng.integers(0, 10, size=4).astype(np.uint8),
    }
    for stem, key in IDX_FILES.items():
        _write_idx(tmp_path / f"{stem}.gz", _idx_bytes(arrays[key]))
    return SimpleNamespace(root=tmp_path, arrays=arrays)


@pytest.mark.parametrize("gzipped", [True, False], ids=["gz", "plain"])
def test_fashion_mnist_reads_idx_files_exactly(fashion, assert_stats, gzipped):
    if not gzipped:
        for stem in IDX_FILES:
            gz = fashion.root / f"{stem}.gz"
            (fashion.root / stem).write_bytes(gzip.decompress(gz.read_bytes()))
            gz.unlink()
    ds = load_dataset("fashion-mnist", fashion.root)
    assert ds.name == "fashion-mnist" and ds.classes == FASHION_MNIST_CLASSES and ds.image_shape == (28, 28, 1)
    np.testing.assert_array_equal(ds.train_images[..., 0], fashion.arrays["train", "images"])
    np.testing.assert_array_equal(ds.train_labels, fashion.arrays["train", "labels"])
    np.testing.assert_array_equal(ds.test_images[..., 0], fashion.arrays["test", "images"])
    np.testing.assert_array_equal(ds.test_labels, fashion.arrays["test", "labels"])
    assert ds.train_labels.dtype == np.int64
    assert_stats(ds)


@pytest.mark.parametrize("image_size", [0, 28, 32])
def test_fashion_mnist_keeps_28_pixels_unless_image_size_asks_otherwise(fashion, assert_stats, image_size):
    ds = load_dataset("fashion-mnist", fashion.root, image_size=image_size)
    side = image_size or 28
    assert ds.image_shape == (side, side, 1)
    # resized as the service resizes the upload of a PNG holding the native image
    expected = [decode_image(encode(Image.fromarray(a), "PNG"), "x.png", (side, side, 1), 10**6)
                for a in fashion.arrays["test", "images"]]
    np.testing.assert_array_equal(ds.test_images, np.stack(expected))
    assert_stats(ds)


@pytest.mark.parametrize("stem, content, phrases", [
    ("t10k-labels-idx1-ubyte", None, ["is missing", "apt-get install dataset-fashion-mnist"]),
    ("train-images-idx3-ubyte", _idx_bytes(np.zeros(6)), ["magic number 0x00000801, expected 0x00000803"]),
    ("train-images-idx3-ubyte", _idx_bytes(np.zeros((6, 28, 28)), type_code=0x0D), ["magic number 0x00000d03"]),
    ("train-images-idx3-ubyte", _idx_bytes(np.zeros((6, 28, 28)))[:-10], ["truncated"]),
    ("train-labels-idx1-ubyte", _idx_bytes(np.zeros(5)), ["has 6 images but", "has 5 labels"]),
    ("t10k-labels-idx1-ubyte", _idx_bytes(np.full(4, 10)), ["labels from 10 to 10, expected 0..9"]),
], ids=["missing-file", "labels-magic-for-images", "float-type-code", "truncated", "count-mismatch", "bad-label"])
def test_fashion_mnist_bad_files_are_refused(fashion, stem, content, phrases):
    path = fashion.root / f"{stem}.gz"
    if content is None:
        path.unlink()
    else:
        _write_idx(path, content)
    with pytest.raises(DataError) as err:
        load_dataset("fashion-mnist", fashion.root)
    message = str(err.value)
    assert stem in message and all(p in message for p in phrases), message


def test_fashion_mnist_corrupt_gzip_is_refused(fashion):
    path = fashion.root / "train-labels-idx1-ubyte.gz"
    path.write_bytes(path.read_bytes()[:20])
    with pytest.raises(DataError, match="cannot be read"):
        load_dataset("fashion-mnist", fashion.root)


def test_fashion_mnist_missing_directory_suggests_the_package(tmp_path):
    with pytest.raises(DataError) as err:
        load_dataset("fashion-mnist", tmp_path / "absent")
    assert str(tmp_path / "absent") in str(err.value) and "apt-get install dataset-fashion-mnist" in str(err.value)


def test_fashion_mnist_from_the_debian_package():
    # CI installs dataset-fashion-mnist, so the real files must be there: no skip
    ds = load_dataset("fashion-mnist")
    assert ds.train_images.shape == (60000, 28, 28, 1) and ds.test_images.shape == (10000, 28, 28, 1)
    assert ds.train_images.dtype == np.uint8 and ds.train_labels.dtype == np.int64
    # the published set is balanced: 6000 train and 1000 test images per class
    assert np.bincount(ds.train_labels).tolist() == [6000] * 10
    assert np.bincount(ds.test_labels).tolist() == [1000] * 10
    # the widely quoted statistics 0.2860 / 0.3530 of the [0, 1]-scaled train set, in pixel units
    assert ds.mean[0] == pytest.approx(0.2860 * 255, abs=0.1) and ds.std[0] == pytest.approx(0.3530 * 255, abs=0.1)
