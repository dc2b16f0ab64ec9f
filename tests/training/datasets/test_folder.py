"""The image-folder loader: <root>/{train,test}/<class>/* of any size, mode and format read through the service's
decoder at image_size, EXIF orientation applied, the channel rule, and bad layouts refused by path. The cache of
the decoded arrays: test_folder_cache.py."""

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cifar10_pipeline.contract.images import decode_image
from cifar10_pipeline.training.datasets import DataError, load_dataset
from cifar10_pipeline.training.datasets.folder import MAX_PIXELS
from tests.support.images import GRAY_KINDS, red_over_blue, write_photos


def _write_images(root: Path, images: dict[str, np.ndarray]) -> None:
    """Write each uint8 [H, W] (gray, mode L) or [H, W, 3] (RGB) array as a PNG at root / relative path."""
    for relative, array in images.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(array).save(path, format="PNG")


def _pixels(rng, channels: int, side: int = 8) -> np.ndarray:
    shape = (side, side) if channels == 1 else (side, side, channels)
    return rng.integers(0, 256, size=shape, dtype=np.uint8)


@pytest.mark.parametrize("first, others, channels", [(3, 3, 3), (1, 1, 1), (1, 3, 3)],
                         ids=["rgb", "gray", "gray-among-rgb"])
def test_folder_reads_images_exactly_at_their_own_size(tmp_path, assert_stats, first, others, channels):
    rng = np.random.default_rng(3)
    images = {
        "train/dog/b.png": _pixels(rng, first),
        "train/dog/a.PNG": _pixels(rng, others),  # upper-case extension counts too
        "train/cat/x.png": _pixels(rng, others),
        "test/cat/y.png": _pixels(rng, others),
        "test/dog/z.png": _pixels(rng, others),
    }
    _write_images(tmp_path / "data", images)
    (tmp_path / "data/train/cat/notes.txt").write_text("not an image: ignored")
    ds = load_dataset("folder", tmp_path / "data", image_size=8)

    def expected(*names):  # gray [H, W] -> [H, W, 1], or 3 equal channels once any image is RGB
        return np.stack([images[n] if images[n].ndim == 3 else np.dstack([images[n]] * channels) for n in names])

    assert ds.classes == ("cat", "dog") and ds.image_shape == (8, 8, channels)
    # classes in sorted order, files sorted by name within a class
    np.testing.assert_array_equal(ds.train_images, expected("train/cat/x.png", "train/dog/a.PNG", "train/dog/b.png"))
    np.testing.assert_array_equal(ds.test_images, expected("test/cat/y.png", "test/dog/z.png"))
    assert ds.train_labels.tolist() == [0, 1, 1] and ds.test_labels.tolist() == [0, 1]
    assert_stats(ds)


@pytest.mark.parametrize("kinds, channels", [(None, 3), (GRAY_KINDS, 1)], ids=["every-mode", "gray-modes"])
def test_mixed_sizes_modes_and_formats_load_as_the_decoder_gives_them(tmp_path, assert_stats, kinds, channels):
    # 40x40 .. 300x300, JPEG (RGB, CMYK, gray, EXIF-rotated), PNG (RGB, RGBA, palette, gray, gray+alpha, 16-bit,
    # 1-bit), GIF, BMP, WebP: gray only when every image is
    paths = write_photos(tmp_path / "data", {"train": 15, "test": 4}, **({"kinds": kinds} if kinds else {}))
    sizes = {Image.open(p).size for p in paths}
    assert len(sizes) > 30 and min(min(s) for s in sizes) < 60 and max(max(s) for s in sizes) > 280
    ds = load_dataset("folder", tmp_path / "data", image_size=24)
    assert ds.image_shape == (24, 24, channels) and len(ds.train_images) == 30 and len(ds.test_images) == 8
    by_split = {"train": ds.train_images, "test": ds.test_images}
    for split, images in by_split.items():
        files = [p for p in paths if p.parts[-3] == split]  # written class by class, in name order
        expected = [decode_image(p.read_bytes(), p.name, (24, 24, channels), MAX_PIXELS) for p in files]
        np.testing.assert_array_equal(images, np.stack(expected))
    assert ds.train_labels.tolist() == [0] * 15 + [1] * 15
    assert_stats(ds)


def test_folder_defaults_to_32_pixels(tmp_path):
    write_photos(tmp_path, {"train": 2, "test": 1})
    assert load_dataset("folder", tmp_path).image_shape == (32, 32, 3)


def test_exif_orientation_is_applied_to_training_images(tmp_path):
    for split in ("train", "test"):
        for orientation, name in ((1, "upright"), (6, "turned")):
            path = tmp_path / split / name / "a.jpg"
            path.parent.mkdir(parents=True)
            path.write_bytes(red_over_blue("JPEG", orientation))
    ds = load_dataset("folder", tmp_path, image_size=8)
    assert ds.classes == ("turned", "upright")
    turned, upright = ds.train_images[..., 0].astype(int)  # the red channel
    assert upright[0].min() > 200 and upright[-1].max() < 50  # red on top, as stored
    assert turned[:, 0].max() < 50 and turned[:, -1].min() > 200  # orientation 6: red on the right


def _good_folder(root: Path) -> None:
    rng = np.random.default_rng(4)
    _write_images(root, {f"{split}/{c}/{i}.png": _pixels(rng, 3) for split in ("train", "test") for c in "ab"
                         for i in range(2)})


@pytest.mark.parametrize("spoil, culprit, phrases", [
    (lambda root: shutil.rmtree(root / "test"), "test", ["is not a folder", "train/<class>/*.png|jpg|jpeg|gif"]),
    (lambda root: shutil.rmtree(root / "test/b"), "test", ["has classes ['a']", "has ['a', 'b']"]),
    (lambda root: [p.unlink() for p in (root / "train/a").iterdir()], "train/a",
     ["holds no *.png|jpg|jpeg|gif|bmp|webp images"]),
    (lambda root: (root / "train/a/0.png").write_bytes(b"not a png"), "train/a/0.png",
     ["is not a PNG, JPEG, GIF, BMP or WebP image", "fix or remove it"]),
    (lambda root: (root / "test/b/1.png").write_bytes(b""), "test/b/1.png", ["is empty", "fix or remove it"]),
    (lambda root: (root / "train/b/1.png").write_bytes((root / "train/b/1.png").read_bytes()[:60]), "train/b/1.png",
     ["cannot be decoded", "fix or remove it"]),
    (lambda root: [shutil.rmtree(root / s / c) for s in ("train", "test") for c in "ab"], "train",
     ["has no class subfolders"]),
], ids=["no-test-split", "class-sets-differ", "empty-class", "not-an-image", "empty-file", "cut-short", "no-classes"])
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
