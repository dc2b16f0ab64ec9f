"""Your own images: ``ROOT/{train,test}/<class>/*`` in any format the service accepts (PNG, JPEG, GIF, BMP, WebP),
of any size and mode; class names from the folder names.

Every image goes through ``contract.images.decode_image``, the service's own decoder, at ``image_size`` x
``image_size`` (EXIF orientation applied, transparency composited on white, 16-bit and palette images reduced to
8 bits, squashed rather than cropped), so a model trained here sees exactly the pixels the service gives it for
the same file. Channels: gray (C = 1) when every image is gray (``contract.images.GRAY_MODES``), else RGB, gray
images then having three equal channels, as the service decodes them for an RGB model. The decoded arrays are
cached (``cache.py``) under a key of the folder's content and the decoder, so the next run skips decoding.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

from cifar10_pipeline.contract.images import DECODER, GRAY_MODES, SUFFIXES, ImageError, decode_image, open_image
from cifar10_pipeline.training.datasets import cache
from cifar10_pipeline.training.datasets.base import DataError, Dataset, make_dataset

DEFAULT_IMAGE_SIZE = 32  # pixels, when the config leaves image_size at 0
# Pillow's own default decompression-bomb limit (Image.MAX_IMAGE_PIXELS, about 89 megapixels): a user's own
# photos are trusted more than uploads (the service refuses over 24), yet a corrupt header that claims billions
# of pixels still fails naming the file instead of exhausting memory
MAX_PIXELS = 89_478_485
_PATTERN = "*." + "|".join(suffix[1:] for suffix in SUFFIXES)  # *.png|jpg|...


def _class_names(split_dir: Path) -> list[str]:
    return sorted(p.name for p in split_dir.iterdir() if p.is_dir() and not p.name.startswith("."))


def _image_files(class_dir: Path) -> list[Path]:
    files = sorted(p for p in class_dir.iterdir() if p.is_file() and p.suffix.lower() in SUFFIXES)
    if not files:
        raise DataError(f"{class_dir} holds no {_PATTERN} images; every class needs images in train/ and test/")
    return files


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise DataError(f"{path} cannot be read: {e.strerror or e}") from e


def _is_gray(path: Path) -> bool:
    """From the header alone: whether the decoder treats ``path`` as gray."""
    try:
        return open_image(_read(path), str(path), MAX_PIXELS).mode in GRAY_MODES
    except ImageError as e:
        raise DataError(f"{e.message}; fix or remove it") from e


def _decode_all(root: Path, files: list[Path], size: int) -> np.ndarray:
    """uint8 [N, size, size, C] of ``files``, C = 1 if every one is gray, else 3; a progress bar on a terminal."""
    channels = 1 if all(_is_gray(path) for path in files) else 3  # stops at the first colour image
    try:
        images = np.empty((len(files), size, size, channels), dtype=np.uint8)
    except MemoryError:
        gib = len(files) * size * size * channels / 2**30
        raise DataError(f"{len(files)} images of {root} at {size}x{size}x{channels} need {gib:.1f} GiB, more than "
                        "this machine can allocate; choose a smaller image_size") from None
    for i, path in enumerate(tqdm(files, desc=f"decoding {root}", unit="image", leave=False, disable=None)):
        try:
            images[i] = decode_image(_read(path), str(path), (size, size, channels), MAX_PIXELS)
        except ImageError as e:
            raise DataError(f"{e.message}; fix or remove it") from e
    return images


def _cached_decode(root: Path, files: list[Path], size: int) -> np.ndarray:
    """``_decode_all``, from the cache when the folder and the decoder are unchanged since it was filled."""
    try:
        # the decoder's identity and the size are all that shape the pixels besides the files themselves; the
        # channel count follows from the files, so it needs no part of its own
        key = cache.file_key(root, files, "folder", DECODER, size)
    except OSError as e:
        raise DataError(f"cannot read the files under {root}: {e}") from e
    path = cache.cache_dir("folder") / f"{key}.npy"
    images = cache.load(path)
    # any readable uint8 .npy may sit under the key (another version's, or a hand-made one): only N images of
    # size x size with 1 or 3 channels are these files' arrays
    if images is not None and images.shape[:3] == (len(files), size, size) and images.shape[3:] in ((1,), (3,)):
        print(f"{len(files)} images of {root} at {size}x{size}x{images.shape[3]} from the cache {path}",
              file=sys.stderr)
        return images
    images = _decode_all(root, files, size)
    cache.save(path, images)
    print(f"{len(files)} images of {root} decoded to {size}x{size}x{images.shape[3]}, cached in {path}",
          file=sys.stderr)
    return images


def load_folder(data_dir: str | Path | None, image_size: int = 0) -> Dataset:
    """The data set under ``data_dir``, every image decoded to ``image_size`` (0: ``DEFAULT_IMAGE_SIZE``)
    pixels square."""
    layout_help = f"ROOT/{{train,test}}/<class>/{_PATTERN}"
    if not data_dir:
        raise DataError(f"the 'folder' dataset needs data_dir: ROOT with {layout_help}")
    root = Path(data_dir)
    layout = f"{root}/train/<class>/{_PATTERN} and {root}/test/<class>/{_PATTERN}"
    splits = {}
    for split in ("train", "test"):
        split_dir = root / split
        if not split_dir.is_dir():
            raise DataError(f"{split_dir} is not a folder; the 'folder' dataset expects {layout}")
        splits[split] = _class_names(split_dir)
    classes = splits["train"]
    if not classes:
        raise DataError(f"{root / 'train'} has no class subfolders; the 'folder' dataset expects {layout}")
    if splits["test"] != classes:
        raise DataError(
            f"{root / 'test'} has classes {splits['test']} but {root / 'train'} has {classes}; "
            "both need the same class subfolders"
        )

    files = {split: [_image_files(root / split / name) for name in classes] for split in ("train", "test")}
    labels = {split: np.repeat(np.arange(len(classes)), [len(f) for f in files[split]]) for split in files}
    paths = [path for split in ("train", "test") for per_class in files[split] for path in per_class]
    images = _cached_decode(root, paths, image_size or DEFAULT_IMAGE_SIZE)
    n_train = len(labels["train"])
    return make_dataset("folder", images[:n_train], labels["train"], images[n_train:], labels["test"], tuple(classes))
