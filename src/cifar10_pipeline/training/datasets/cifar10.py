"""CIFAR-10: the official python archive, downloaded once (md5-checked, atomic) and unpickled safely."""

from __future__ import annotations

import gzip
import hashlib
import http.client
import logging
import os
import pickle
import shutil
import tarfile
import tempfile
import urllib.request
import zlib
from pathlib import Path
from typing import BinaryIO

import numpy as np
from tqdm import tqdm

from cifar10_pipeline.training.datasets.base import DataError, Dataset, check_labels, make_dataset

log = logging.getLogger(__name__)

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
CIFAR10_DEFAULT_DIR = "data/cifar10"  # relative to the working directory; $CIFAR10_DIR overrides it

_CIFAR_ARCHIVE = "cifar-10-python.tar.gz"
_CIFAR_FOLDER = "cifar-10-batches-py"
_CIFAR_TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
_CIFAR_SIDE = 32  # CIFAR-10 images are 32x32 RGB, stored as 3 * 32 * 32 = 3072 bytes per row
_DOWNLOAD_CHUNK = 1 << 20  # bytes read per network read and per checksum update
_DOWNLOAD_TIMEOUT_S = 60  # per blocking socket operation, not for the whole download


def _manual_hint(archive: Path, url: str) -> str:
    return (
        f"To fetch it by hand: download {url}, put it at {archive} (or set CIFAR10_DIR to a folder holding "
        f"{_CIFAR_ARCHIVE} or an extracted {_CIFAR_FOLDER}/) and run again."
    )


def load_cifar10(data_dir: str | Path | None, download: bool) -> Dataset:
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
                _extract_plain_files(tar, staging)
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


def _extract_plain_files(tar: tarfile.TarFile, into: Path) -> None:
    """Write the archive's regular files under into; any link, device or path leaving into is a TarError.

    The CIFAR-10 archive holds only folders and regular files. Checking members here, rather than with
    extractall's filter="data", keeps the safety on Python builds older than 3.11.4 (Debian 12's 3.11.2).
    """
    for member in tar:
        parts = Path(member.name).parts
        if Path(member.name).is_absolute() or ".." in parts:
            raise tarfile.TarError(f"member {member.name!r} would land outside the extraction folder")
        if member.isdir():
            continue
        if not member.isfile():
            raise tarfile.TarError(f"member {member.name!r} is a link or a device, not a regular file")
        target = into.joinpath(*parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        with tar.extractfile(member) as source, target.open("wb") as out:
            shutil.copyfileobj(source, out)


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
    check_labels(labels, num_classes, path)
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
    return make_dataset(
        "cifar10",
        np.concatenate([images for images, _ in train]),
        np.concatenate([labels for _, labels in train]),
        np.ascontiguousarray(test_images),
        test_labels,
        classes,
    )
