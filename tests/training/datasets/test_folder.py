"""The image-folder loader: <root>/{train,test}/<class>/*.png read exactly, and bad layouts refused by path."""

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from training.datasets import DataError, load_dataset


def _write_images(root: Path, images: dict[str, np.ndarray]) -> None:
    """Write each uint8 [H, W] (gray, mode L) or [H, W, 3] (RGB) array as a PNG at root / relative path."""
    for relative, array in images.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(array).save(path, format="PNG")


def _pixels(rng, channels: int, height: int = 4, width: int = 5) -> np.ndarray:
    shape = (height, width) if channels == 1 else (height, width, channels)
    return rng.integers(0, 256, size=shape, dtype=np.uint8)


@pytest.mark.parametrize("first, others, channels", [(3, 3, 3), (1, 1, 1), (1, 3, 3)],
                         ids=["rgb", "gray", "gray-among-rgb"])
def test_folder_reads_images_exactly(tmp_path, assert_stats, first, others, channels):
    rng = np.random.default_rng(3)
    images = {
        "train/dog/b.png": _pixels(rng, first),
        "train/dog/a.PNG": _pixels(rng, others),  # upper-case extension counts too
        "train/cat/x.png": _pixels(rng, others),
        "test/cat/y.png": _pixels(rng, others),
        "test/dog/z.png": _pixels(rng, others),
    }
    _write_images(tmp_path, images)
    (tmp_path / "train/cat/notes.txt").write_text("not an image: ignored")
    ds = load_dataset("folder", tmp_path)

    def expected(*names):  # gray [H, W] -> [H, W, 1], or 3 equal channels once any image is RGB
        return np.stack([images[n] if images[n].ndim == 3 else np.dstack([images[n]] * channels) for n in names])

    assert ds.classes == ("cat", "dog") and ds.image_shape == (4, 5, channels)
    # classes in sorted order, files sorted by name within a class
    np.testing.assert_array_equal(ds.train_images, expected("train/cat/x.png", "train/dog/a.PNG", "train/dog/b.png"))
    np.testing.assert_array_equal(ds.test_images, expected("test/cat/y.png", "test/dog/z.png"))
    assert ds.train_labels.tolist() == [0, 1, 1] and ds.test_labels.tolist() == [0, 1]
    assert_stats(ds)


def _good_folder(root: Path) -> None:
    rng = np.random.default_rng(4)
    _write_images(root, {f"{split}/{c}/{i}.png": _pixels(rng, 3) for split in ("train", "test") for c in "ab"
                         for i in range(2)})


@pytest.mark.parametrize("spoil, culprit, phrases", [
    (lambda root: _write_images(root, {"train/b/1.png": np.zeros((6, 5, 3), np.uint8)}), "train/b/1.png",
     ["is 5x6 pixels", "train/a/0.png is 5x4", "resize"]),
    (lambda root: shutil.rmtree(root / "test"), "test", ["is not a folder", "train/<class>"]),
    (lambda root: shutil.rmtree(root / "test/b"), "test", ["has classes ['a']", "has ['a', 'b']"]),
    (lambda root: [p.unlink() for p in (root / "train/a").iterdir()], "train/a", ["holds no .png/.jpg/.jpeg"]),
    (lambda root: (root / "train/a/0.png").write_bytes(b"not a png"), "train/a/0.png", ["cannot be read"]),
    (lambda root: [shutil.rmtree(root / s / c) for s in ("train", "test") for c in "ab"], "train",
     ["has no class subfolders"]),
], ids=["mixed-sizes", "no-test-split", "class-sets-differ", "empty-class", "unreadable-image", "no-classes"])
def test_folder_bad_layout_is_refused(tmp_path, spoil, culprit, phrases):
    _good_folder(tmp_path)
    spoil(tmp_path)
    with pytest.raises(DataError) as err:
        load_dataset("folder", tmp_path)
    message = str(err.value)
    assert str(tmp_path / culprit) in message and all(p in message for p in phrases), message


def test_folder_needs_a_data_dir():
    with pytest.raises(DataError, match="needs data_dir"):
        load_dataset("folder")
