"""The folder loader's cache of decoded arrays: a second load decodes nothing, any change to the folder (or the
image size, or the decoder's version) misses, an entry that is broken or holds an array of another shape is decoded
again, and an unwritable cache never breaks a load. ``cache_home`` (conftest) is each test's own XDG_CACHE_HOME."""

import os

import numpy as np
import pytest

from cifar10_pipeline.contract.images import decode_image
from cifar10_pipeline.training.datasets import folder, load_dataset
from tests.support.images import encode, photo, write_photos

COUNTS = {"train": 4, "test": 2}  # per class, two classes: 12 images


@pytest.fixture
def decoded(monkeypatch) -> list[str]:
    """The names of the images the folder loader decodes, in order."""
    names = []

    def counting(data, name, shape, max_pixels):
        names.append(name)
        return decode_image(data, name, shape, max_pixels)

    monkeypatch.setattr(folder, "decode_image", counting)
    return names


def _entries(cache_home):
    return sorted((cache_home / "cifar10-pipeline" / "folder").iterdir())


def test_a_second_load_reads_the_cache_and_decodes_nothing(tmp_path, cache_home, decoded, capsys):
    write_photos(tmp_path, COUNTS)
    first = load_dataset("folder", tmp_path, image_size=16)
    assert len(decoded) == 12 and "decoded to 16x16x3, cached in" in capsys.readouterr().err
    [entry] = _entries(cache_home)  # one .npy, no temporary file left behind
    assert entry.suffix == ".npy"
    second = load_dataset("folder", tmp_path, image_size=16)
    assert len(decoded) == 12, "the second load decoded images again"
    assert f"12 images of {tmp_path} at 16x16x3 from the cache {entry}" in capsys.readouterr().err
    np.testing.assert_array_equal(second.train_images, first.train_images)
    np.testing.assert_array_equal(second.test_images, first.test_images)
    assert second.train_labels.tolist() == first.train_labels.tolist() and second.classes == first.classes


def _rewrite(paths):
    paths[0].write_bytes(encode(photo(np.random.default_rng(9), (70, 50), "RGB", (10, 250, 10)), "JPEG"))


def _touch(paths):
    stat = paths[0].stat()
    os.utime(paths[0], ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # same bytes, a second newer


CHANGES = {
    "rewritten": (_rewrite, 12),
    "touched": (_touch, 12),
    "added": (lambda paths: paths[-1].with_name("new.png").write_bytes(paths[0].read_bytes()), 13),
    "removed": (lambda paths: paths[1].unlink(), 11),
    "renamed": (lambda paths: paths[1].rename(paths[1].with_name("renamed" + paths[1].suffix)), 12),
    "other-size": (lambda paths: None, 12),
}


@pytest.mark.parametrize("change", CHANGES)
def test_a_changed_folder_or_size_misses_the_cache(tmp_path, cache_home, decoded, change):
    paths = write_photos(tmp_path, COUNTS)
    first = load_dataset("folder", tmp_path, image_size=16)
    spoil, images_after = CHANGES[change]
    spoil(paths)
    size = 20 if change == "other-size" else 16
    second = load_dataset("folder", tmp_path, image_size=size)
    assert len(decoded) == 12 + images_after and len(_entries(cache_home)) == 2
    assert len(second.train_images) + len(second.test_images) == images_after
    if change == "rewritten":  # the new pixels, not the cached ones
        assert not np.array_equal(second.train_images[0], first.train_images[0])
        np.testing.assert_array_equal(second.train_images[0],
                                      decode_image(paths[0].read_bytes(), "x", (16, 16, 3), folder.MAX_PIXELS))


def test_a_broken_cache_entry_is_decoded_again_and_replaced(tmp_path, cache_home, decoded):
    write_photos(tmp_path, COUNTS)
    first = load_dataset("folder", tmp_path, image_size=16)
    [entry] = _entries(cache_home)
    entry.write_bytes(b"\x93NUMPY half a file")
    again = load_dataset("folder", tmp_path, image_size=16)
    np.testing.assert_array_equal(again.train_images, first.train_images)
    assert len(decoded) == 24 and np.load(entry).shape == (12, 16, 16, 3)


def test_a_new_decoder_version_never_reads_the_old_decoders_arrays(tmp_path, cache_home, decoded, monkeypatch):
    # as when DECODE_VERSION is bumped (or Pillow upgraded) because the decoder gives other pixels for the same bytes
    paths = write_photos(tmp_path, COUNTS)
    load_dataset("folder", tmp_path, image_size=16)
    counting = folder.decode_image

    def new_decoder(data, name, shape, max_pixels):
        return 255 - counting(data, name, shape, max_pixels)

    monkeypatch.setattr(folder, "decode_image", new_decoder)
    monkeypatch.setattr(folder, "DECODER", folder.DECODER + " (next version)")
    again = load_dataset("folder", tmp_path, image_size=16)
    assert len(decoded) == 24 and len(_entries(cache_home)) == 2  # decoded again, under a key of its own
    np.testing.assert_array_equal(again.train_images[0], new_decoder(paths[0].read_bytes(), "x", (16, 16, 3),
                                                                     folder.MAX_PIXELS))


WRONG_ENTRIES = {
    # name: a readable .npy under the right key that does not hold these 12 images at 16x16 (RGB)
    "fewer-images": np.zeros((11, 16, 16, 3), np.uint8),
    "other-size": np.zeros((12, 16, 20, 3), np.uint8),
    "four-channels": np.zeros((12, 16, 16, 4), np.uint8),
    "no-channel-axis": np.zeros((12, 16, 16), np.uint8),
    "float": np.zeros((12, 16, 16, 3), np.float32),
}


@pytest.mark.parametrize("case", WRONG_ENTRIES)
def test_a_valid_npy_of_the_wrong_shape_or_type_is_decoded_again_and_replaced(tmp_path, cache_home, decoded, case):
    write_photos(tmp_path, COUNTS)
    first = load_dataset("folder", tmp_path, image_size=16)
    [entry] = _entries(cache_home)
    np.save(entry, WRONG_ENTRIES[case], allow_pickle=False)
    again = load_dataset("folder", tmp_path, image_size=16)
    assert len(decoded) == 24
    np.testing.assert_array_equal(again.train_images, first.train_images)
    np.testing.assert_array_equal(again.test_images, first.test_images)
    replaced = np.load(entry)
    assert replaced.shape == (12, 16, 16, 3) and replaced.dtype == np.uint8


def test_an_unwritable_cache_only_warns(tmp_path, monkeypatch, capsys):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("XDG_CACHE_HOME points at a file: no cache can be made under it")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    write_photos(tmp_path / "data", COUNTS)
    ds = load_dataset("folder", tmp_path / "data", image_size=16)
    assert ds.image_shape == (16, 16, 3) and "warning: cannot write the cache" in capsys.readouterr().err
