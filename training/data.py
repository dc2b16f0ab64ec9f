"""Datasets for both trainers, as plain numpy arrays: CIFAR-10, Fashion-MNIST, an image folder, or a synthetic set.

Framework-neutral on purpose: only numpy, the standard library, tqdm and pillow are used here, so the PyTorch and
the TensorFlow trainers (and the tuner) read exactly the same pixels, labels and normalisation statistics.

Every loader returns a ``Dataset``: uint8 images ``[N, H, W, C]`` (C = 3 RGB or 1 gray), int64 labels ``[N]``,
the class names, and the per-channel mean/std of the train split in pixel units (0..255). Any problem a user can
cause (missing files, a bad checksum, a corrupt archive, mixed image sizes) raises ``DataError`` with a message that
names the offending path or value and says what to do about it.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import http.client
import logging
import os
import pickle
import shutil
import struct
import tarfile
import tempfile
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import numpy as np
from PIL import Image
from tqdm import tqdm

if TYPE_CHECKING:
    from training.config import TrainConfig

log = logging.getLogger(__name__)

DATASETS = ("cifar10", "fashion-mnist", "folder", "synthetic")

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
CIFAR10_DEFAULT_DIR = "data/cifar10"  # relative to the working directory; $CIFAR10_DIR overrides it

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"  # where Debian's dataset-fashion-mnist installs it
FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip

_CIFAR_ARCHIVE = "cifar-10-python.tar.gz"
_CIFAR_FOLDER = "cifar-10-batches-py"
_CIFAR_TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
_CIFAR_SIDE = 32  # CIFAR-10 images are 32x32 RGB, stored as 3 * 32 * 32 = 3072 bytes per row
_DOWNLOAD_CHUNK = 1 << 20  # bytes read per network read and per checksum update
_DOWNLOAD_TIMEOUT_S = 60  # per blocking socket operation, not for the whole download
_STATS_CHUNK = 4096  # images per chunk when computing mean/std
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


class DataError(Exception):
    """A data problem the user can fix; the message names the path or value at fault and what to do."""


@dataclass(frozen=True)
class Dataset:
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

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(H, W, C) of every image."""
        return tuple(self.train_images.shape[1:])

    @property
    def num_classes(self) -> int:
        return len(self.classes)


def load_dataset(
    name: str, data_dir: str | Path | None = None, *, seed: int = 0, download: bool = True
) -> Dataset:
    """Load one of ``DATASETS``.

    data_dir: cifar10 -> ``$CIFAR10_DIR`` or ``data/cifar10`` when None; fashion-mnist -> ``FASHION_MNIST_DIR`` when
    None; folder -> required; synthetic -> ignored. seed only affects ``synthetic``. download only affects
    ``cifar10``: with False, a missing archive is an error instead of a download.
    """
    if name == "cifar10":
        return _load_cifar10(data_dir, download)
    if name == "fashion-mnist":
        return _load_fashion_mnist(Path(data_dir or FASHION_MNIST_DIR))
    if name == "folder":
        return _load_folder(data_dir)
    if name == "synthetic":
        return make_synthetic(seed)
    raise DataError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")


def split_validation(ds: Dataset, fraction: float, seed: int) -> Dataset:
    """Hold out ``fraction`` of the train split, stratified by class, as a validation set.

    Returns a Dataset whose train_* is the rest and whose test_* is the held-out part, so hyperparameter tuning
    never sees the real test set. Every class with at least 2 images keeps at least one in each part; mean/std are
    recomputed on the new train part. Deterministic for a given seed; both parts keep the original image order.
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
    return _make_dataset(
        ds.name,
        ds.train_images[~is_val],
        ds.train_labels[~is_val],
        ds.train_images[is_val],
        ds.train_labels[is_val],
        ds.classes,
    )


def prepare_for_training(config: TrainConfig) -> Dataset:
    """What a trainer trains and evaluates on: the data set, a held-out validation split in place of the test
    set when ``config.val_fraction`` > 0 (tuning never sees the test set), then the smoke-run sample limits."""
    ds = load_dataset(config.dataset, config.data_dir, seed=config.seed)
    if config.val_fraction > 0:
        ds = split_validation(ds, config.val_fraction, config.seed)
    train_n, test_n = config.max_train_samples or None, config.max_test_samples or None
    return dataclasses.replace(
        ds,
        train_images=ds.train_images[:train_n],
        train_labels=ds.train_labels[:train_n],
        test_images=ds.test_images[:test_n],
        test_labels=ds.test_labels[:test_n],
    )


def _make_dataset(
    name: str,
    train_images: np.ndarray,
    train_labels: np.ndarray,
    test_images: np.ndarray,
    test_labels: np.ndarray,
    classes: tuple[str, ...],
) -> Dataset:
    mean, std = _channel_stats(train_images)
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


def _channel_stats(images: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
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


def _check_labels(labels: np.ndarray, num_classes: int, source: Path) -> None:
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise DataError(
            f"{source} has labels from {labels.min()} to {labels.max()}, expected 0..{num_classes - 1}; "
            "the file is corrupt or belongs to another dataset"
        )


# --------------------------------------------------------------------------------------------------- CIFAR-10


def _manual_hint(archive: Path, url: str) -> str:
    return (
        f"To fetch it by hand: download {url}, put it at {archive} (or set CIFAR10_DIR to a folder holding "
        f"{_CIFAR_ARCHIVE} or an extracted {_CIFAR_FOLDER}/) and run again."
    )


def _load_cifar10(data_dir: str | Path | None, download: bool) -> Dataset:
    root = Path(data_dir or os.environ.get("CIFAR10_DIR") or CIFAR10_DEFAULT_DIR)
    folder = root / _CIFAR_FOLDER
    if not folder.is_dir():
        archive = root / _CIFAR_ARCHIVE
        if not (download or archive.is_file()):
            raise DataError(
                f"CIFAR-10 is not in {root} (no {_CIFAR_FOLDER}/ nor {_CIFAR_ARCHIVE}) and download is off. "
                + _manual_hint(archive, CIFAR10_URL)
            )
        # $CIFAR10_URL points at a mirror (same archive, same checksum); tests patch the module globals
        url = os.environ.get("CIFAR10_URL") or CIFAR10_URL
        _extract_cifar10(download_cifar10(root, url, CIFAR10_MD5), root)
    return _read_cifar10_folder(folder)


def download_cifar10(dest_dir: str | Path, url: str = CIFAR10_URL, md5: str = CIFAR10_MD5) -> Path:
    """Return the checksum-verified ``cifar-10-python.tar.gz`` in dest_dir, downloading it first if it is absent.

    The download streams into a temporary file in dest_dir that is renamed into place only once its md5 matches,
    so an interrupted or corrupt download never leaves a half archive under the final name.
    """
    dest_dir = Path(dest_dir)
    archive = dest_dir / _CIFAR_ARCHIVE
    if archive.is_file():
        _verify_md5(archive, md5)
        return archive
    try:
        dest_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataError(f"cannot create {dest_dir} for CIFAR-10: {e}; choose another data_dir or CIFAR10_DIR") from e

    fd, tmp_name = tempfile.mkstemp(dir=dest_dir, prefix=f".{_CIFAR_ARCHIVE}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            actual = _fetch(url, out, archive)
        if actual != md5:
            raise DataError(
                f"the file downloaded from {url} has md5 {actual}, expected {md5}; it was discarded and nothing was "
                f"written to {archive}. Retry later. {_manual_hint(archive, url)}"
            )
        os.replace(tmp, archive)
    finally:
        tmp.unlink(missing_ok=True)  # a failed or interrupted download; after os.replace it is already gone
    return archive


def _fetch(url: str, out: BinaryIO, archive: Path) -> str:
    """Stream url into the open binary file out with a progress bar; return the md5 hex digest of what was written."""
    failed, hint = f"could not download CIFAR-10 from {url}", _manual_hint(archive, url)
    digest = hashlib.md5(usedforsecurity=False)
    received = 0  # bytes
    try:
        with urllib.request.urlopen(url, timeout=_DOWNLOAD_TIMEOUT_S) as response:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=archive.name) as bar:
                while chunk := response.read(_DOWNLOAD_CHUNK):
                    out.write(chunk)
                    digest.update(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
    # URLError/HTTPError/timeouts are OSErrors, a broken response an HTTPException, a malformed URL a ValueError
    except (OSError, http.client.HTTPException, ValueError) as e:
        raise DataError(f"{failed}: {e}. {hint}") from e
    # urllib returns a short body without complaint when the server hangs up early
    if total is not None and received != total:
        raise DataError(f"{failed}: the connection was cut after {received} of {total} bytes. {hint}")
    return digest.hexdigest()


def _file_md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as f:
        while chunk := f.read(_DOWNLOAD_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _verify_md5(archive: Path, md5: str) -> None:
    actual = _file_md5(archive)
    if actual != md5:
        raise DataError(
            f"{archive} has md5 {actual}, expected {md5}: it is incomplete or not the CIFAR-10 python archive. "
            f"Delete it and run again to download it afresh, or replace it with a good copy of {CIFAR10_URL}."
        )


def _extract_cifar10(archive: Path, root: Path) -> None:
    """Extract the archive's cifar-10-batches-py/ into root, all or nothing."""
    log.info("extracting %s into %s", archive, root)
    # extract into a scratch folder and rename the result into place: a killed extraction must not leave a
    # partial cifar-10-batches-py/ that the next run would take as complete
    staging = Path(tempfile.mkdtemp(dir=root, prefix=".extract-"))
    try:
        try:
            with tarfile.open(archive, "r:gz") as tar:
                tar.extractall(staging, filter="data")  # "data" refuses absolute paths, links out, device files
        except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as e:
            raise DataError(
                f"{archive} cannot be extracted ({e}): it is corrupt, truncated or not the CIFAR-10 archive. "
                f"Delete it and run again to download it afresh, or replace it with a good copy of {CIFAR10_URL}."
            ) from e
        extracted = staging / _CIFAR_FOLDER
        if not extracted.is_dir():
            raise DataError(f"{archive} has no {_CIFAR_FOLDER}/ inside: it is not the CIFAR-10 archive {CIFAR10_URL}")
        os.replace(extracted, root / _CIFAR_FOLDER)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles only what CIFAR-10 batches hold (dicts, lists, bytes, numpy arrays): a batch file must not run code."""

    _ALLOWED = {
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),  # written by numpy < 2 (the published archive)
        ("numpy._core.multiarray", "_reconstruct"),  # written by numpy >= 2
        ("numpy.core.numeric", "_frombuffer"),  # pickle protocol 5, numpy < 2
        ("numpy._core.numeric", "_frombuffer"),  # pickle protocol 5, numpy >= 2
        ("_codecs", "encode"),  # bytes pickled by Python 3 with protocol < 3
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}, which a CIFAR-10 batch never holds")
        return super().find_class(module, name)


def _unpickle_dict(path: Path) -> dict:
    fix = f"Delete {path.parent} and run again to extract it afresh from {_CIFAR_ARCHIVE}."
    if not path.is_file():
        raise DataError(f"{path} is missing: the CIFAR-10 folder is incomplete. {fix}")
    try:
        with path.open("rb") as f:
            # the batches were pickled by Python 2: "bytes" keeps their str keys and names as bytes
            content = _ArrayUnpickler(f, encoding="bytes").load()
    except Exception as e:  # unpickling junk can raise almost any exception type
        raise DataError(f"{path} is corrupt ({type(e).__name__}: {e}). {fix}") from e
    if not isinstance(content, dict):
        raise DataError(f"{path} holds a {type(content).__name__}, not a CIFAR-10 batch dict. {fix}")
    return content


def _read_cifar_batch(path: Path, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """One batch file -> uint8 images [N, 32, 32, 3] and int64 labels [N]."""
    batch = _unpickle_dict(path)
    data, labels = batch.get(b"data"), batch.get(b"labels")
    row_bytes = 3 * _CIFAR_SIDE * _CIFAR_SIDE
    if not (isinstance(data, np.ndarray) and data.dtype == np.uint8 and data.ndim == 2 and data.shape[1] == row_bytes):
        raise DataError(
            f"{path} is not a CIFAR-10 batch: b'data' should be uint8 [N, {row_bytes}], got "
            f"{getattr(data, 'dtype', type(data).__name__)} {getattr(data, 'shape', '')}"
        )
    if not isinstance(labels, list) or len(labels) != len(data) or not all(isinstance(x, int) for x in labels):
        raise DataError(f"{path} is not a CIFAR-10 batch: b'labels' should be a list of {len(data)} ints")
    labels = np.asarray(labels, dtype=np.int64)
    _check_labels(labels, num_classes, path)
    # each row holds the R plane, then G, then B, each 32x32 row-major: [N, 3, 32, 32] -> [N, 32, 32, 3]
    images = data.reshape(-1, 3, _CIFAR_SIDE, _CIFAR_SIDE).transpose(0, 2, 3, 1)
    return images, labels


def _read_cifar10_folder(folder: Path) -> Dataset:
    meta_path = folder / "batches.meta"
    names = _unpickle_dict(meta_path).get(b"label_names")
    if not (isinstance(names, list) and names and all(isinstance(n, bytes) for n in names)):
        raise DataError(f"{meta_path} has no b'label_names' list; delete {folder} and run again to extract it afresh")
    classes = tuple(n.decode("utf-8", errors="replace") for n in names)
    train = [_read_cifar_batch(folder / name, len(classes)) for name in _CIFAR_TRAIN_BATCHES]
    test_images, test_labels = _read_cifar_batch(folder / "test_batch", len(classes))
    return _make_dataset(
        "cifar10",
        np.concatenate([images for images, _ in train]),
        np.concatenate([labels for _, labels in train]),
        np.ascontiguousarray(test_images),
        test_labels,
        classes,
    )


# ---------------------------------------------------------------------------------------------- Fashion-MNIST


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
    _check_labels(labels, len(FASHION_MNIST_CLASSES), root / f"{prefix}-labels-idx1-ubyte")
    return images[..., None], labels


def _load_fashion_mnist(root: Path) -> Dataset:
    train_images, train_labels = _read_idx_split(root, "train")
    test_images, test_labels = _read_idx_split(root, "t10k")
    return _make_dataset("fashion-mnist", train_images, train_labels, test_images, test_labels, FASHION_MNIST_CLASSES)


# ------------------------------------------------------------------------------------------------ image folder


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


def _load_folder(data_dir: str | Path | None) -> Dataset:
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
    return _make_dataset("folder", images[:n_train], labels["train"], images[n_train:], labels["test"], tuple(classes))


# --------------------------------------------------------------------------------------------------- synthetic


def _patch(dx: np.ndarray, dy: np.ndarray, r: np.ndarray) -> np.ndarray:
    """The square patch of half-width r that the textured classes are drawn in."""
    return np.maximum(np.abs(dx), np.abs(dy)) <= r


def _bands(t: np.ndarray, width: np.ndarray) -> np.ndarray:
    """Alternating bands of the given width (pixels) along the coordinate t."""
    return np.floor(t / width) % 2 == 0


# class name -> mask (bool [k, S, S]) from the pixel offsets to the shape centre dx, dy [k, S, S], the radius r and
# the stripe width w [k, 1, 1], all in pixels
_SHAPES = {
    "disc": lambda dx, dy, r, w: dx**2 + dy**2 <= r**2,
    "square": lambda dx, dy, r, w: _patch(dx, dy, 0.8 * r),
    "triangle": lambda dx, dy, r, w: (dy <= 0.7 * r) & (2 * np.abs(dx) <= dy + r),  # apex up at -r, base at 0.7r
    "ring": lambda dx, dy, r, w: ((0.55 * r) ** 2 <= dx**2 + dy**2) & (dx**2 + dy**2 <= r**2),
    "cross": lambda dx, dy, r, w: _patch(dx, dy, r) & (np.minimum(np.abs(dx), np.abs(dy)) <= 0.3 * r),
    "horizontal stripes": lambda dx, dy, r, w: _patch(dx, dy, r) & _bands(dy, w),
    "vertical stripes": lambda dx, dy, r, w: _patch(dx, dy, r) & _bands(dx, w),
    "diagonal stripes": lambda dx, dy, r, w: _patch(dx, dy, r) & _bands((dx + dy) / np.sqrt(2), w),
    "diamond": lambda dx, dy, r, w: np.abs(dx) + np.abs(dy) <= r,
    "checkerboard": lambda dx, dy, r, w: _patch(dx, dy, r) & (_bands(dx, w) == _bands(dy, w)),
}
SYNTHETIC_CLASSES = tuple(_SHAPES)


def make_synthetic(seed: int = 0, n_train: int = 8000, n_test: int = 2000, side: int = 32) -> Dataset:
    """A procedurally drawn 10-class RGB shape set (``SYNTHETIC_CLASSES``), identical for identical arguments.

    One shape per image, with a random colour, centre, radius and stripe width, on a random-colour background with
    Gaussian pixel noise. Each split has (near-)equal class counts. 8000 + 2000 images take about a second.
    """
    rng = np.random.default_rng(seed)
    n_classes = len(SYNTHETIC_CLASSES)
    # balanced within each split: labels 0..9 repeated, then shuffled
    labels = np.concatenate([rng.permutation(np.arange(n) % n_classes) for n in (n_train, n_test)])
    n = len(labels)

    # per-image geometry in pixels, [n, 1, 1] to broadcast over the [side, side] grid
    centre_y, centre_x = rng.uniform(0.3 * side, 0.7 * side, size=(2, n, 1, 1)).astype(np.float32)
    radius = rng.uniform(0.18 * side, 0.34 * side, size=(n, 1, 1)).astype(np.float32)  # 5.8 .. 10.9 px at 32
    stripe = rng.integers(2, 4, size=(n, 1, 1)).astype(np.float32)  # stripe / check width, 2 or 3 px
    # colours: every channel of the shape differs from the background by 64..192 levels, so the shape always shows
    background = rng.integers(0, 256, size=(n, 3))
    foreground = (background + rng.integers(64, 193, size=(n, 3))) % 256
    # float32 throughout: the [n, side, side, 3] temporaries dominate the run time
    noise = rng.standard_normal(size=(n, side, side, 3), dtype=np.float32)
    noise *= 12.0  # std of the pixel noise, in pixel units

    grid_y, grid_x = np.mgrid[0:side, 0:side].astype(np.float32) + 0.5  # pixel centres
    mask = np.empty((n, side, side), dtype=bool)
    for label, draw in enumerate(_SHAPES.values()):  # one vectorised call per class, over that class's images
        idx = np.flatnonzero(labels == label)
        mask[idx] = draw(grid_x - centre_x[idx], grid_y - centre_y[idx], radius[idx], stripe[idx])

    noise += np.where(mask[..., None], foreground[:, None, None, :], background[:, None, None, :]).astype(np.float32)
    images = np.clip(np.rint(noise, out=noise), 0, 255, out=noise).astype(np.uint8)
    return _make_dataset(
        "synthetic", images[:n_train], labels[:n_train], images[n_train:], labels[n_train:], SYNTHETIC_CLASSES
    )
