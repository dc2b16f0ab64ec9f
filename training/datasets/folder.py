"""Your own images: ``ROOT/{train,test}/<class>/*.png|jpg|jpeg``, class names from the folder names."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from training.datasets.base import Dataset, DataError, make_dataset

_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def _class_names(split_dir: Path) -> list[str]:
    return sorted(p.name for p in split_dir.iterdir() if p.is_dir() and not p.name.startswith("."))


def _image_files(class_dir: Path) -> list[Path]:
    files = sorted(p for p in class_dir.iterdir() if p.is_file() and p.suffix.lower() in _IMAGE_SUFFIXES)
    if not files:
        raise DataError(f"{class_dir} holds no .png/.jpg/.jpeg images; every class needs images in train/ and test/")
    return files


def _read_images(files: list[Path]) -> np.ndarray:
    """Decode same-sized images into uint8 [N, H, W, C]: C = 1 if every image is grayscale (mode L), else RGB."""
    arrays: list[np.ndarray] = []
    first_size = None
    for path in files:
        try:
            with Image.open(path) as img:
                if first_size is None:
                    first_size = img.size
                elif img.size != first_size:
                    raise DataError(
                        f"{path} is {img.size[0]}x{img.size[1]} pixels (WxH) but {files[0]} is "
                        f"{first_size[0]}x{first_size[1]}; resize every image to one size first"
                    )
                # gray stays [H, W] until we know whether every image is gray; anything else (P, RGBA, CMYK) -> RGB
                arrays.append(np.asarray(img if img.mode == "L" else img.convert("RGB")))
        except (OSError, ValueError, Image.DecompressionBombError) as e:  # UnidentifiedImageError is an OSError
            raise DataError(f"{path} cannot be read as an image ({e}); fix or remove it") from e
    if all(a.ndim == 2 for a in arrays):
        return np.stack(arrays)[..., None]
    # mixed gray and colour: replicate gray into 3 channels, as PIL's L -> RGB conversion does
    return np.stack([np.repeat(a[..., None], 3, axis=-1) if a.ndim == 2 else a for a in arrays])


def load_folder(data_dir: str | Path | None) -> Dataset:
    if not data_dir:
        raise DataError("the 'folder' dataset needs data_dir: ROOT with ROOT/{train,test}/<class>/*.png|jpg|jpeg")
    root = Path(data_dir)
    layout = f"{root}/train/<class>/*.png|jpg|jpeg and {root}/test/<class>/*.png|jpg|jpeg"
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
    images = _read_images([path for split in ("train", "test") for per_class in files[split] for path in per_class])
    n_train = len(labels["train"])
    return make_dataset("folder", images[:n_train], labels["train"], images[n_train:], labels["test"], tuple(classes))
