"""A disk cache of decoded image arrays: one ``.npy`` file per key under the user's cache folder.

``$XDG_CACHE_HOME/cifar10-pipeline/<kind>/<key>.npy`` (``~/.cache/...`` when XDG_CACHE_HOME is unset), written
atomically (a temporary file in the same folder, then a rename), so a crash or a second process never leaves a
half-written entry under the final name. Entries are never invalidated in place: a changed input gives another key.
Deleting the folder is always safe; it only costs decoding again.
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

PROJECT = "cifar10-pipeline"


def cache_dir(kind: str) -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / PROJECT / kind


def file_key(root: Path, files: list[Path], *settings: object) -> str:
    """A key that changes when any file under ``root`` is added, removed, renamed, resized or rewritten, or any
    of ``settings`` changes.

    It hashes each file's path relative to ``root`` (which also carries its split and class) with its size in
    bytes and modification time in nanoseconds, as make and rsync judge freshness: a cache hit costs one stat per
    file and reads no image, which is what makes the second run start at once. Relative paths keep the key valid
    for a folder moved or copied with its times (``cp -a``, ``rsync -a``); a copy with new times only costs one
    decode. Not noticed: a file rewritten with exactly its old size and modification time (the clock's resolution
    is a few milliseconds on some filesystems), which is not how photos are edited.
    """
    digest = hashlib.sha256(repr(settings).encode())
    for path in files:
        stat = path.stat()
        digest.update(f"{path.relative_to(root).as_posix()}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:32]


def load(path: Path) -> np.ndarray | None:
    """The uint8 array cached at ``path``, or None when there is none (a missing or unreadable entry is a miss:
    the caller decodes again and overwrites it)."""
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError):
        return None
    return array if array.dtype == np.uint8 else None


def save(path: Path, array: np.ndarray) -> None:
    """Write ``array`` to ``path`` atomically. A cache that cannot be written (read-only home, full disk) is
    only a warning: the caller already has the array."""
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=path.stem, suffix=".tmp", delete=False) as f:
            tmp = Path(f.name)
            np.save(f, array, allow_pickle=False)
        tmp.replace(path)
    except OSError as e:
        print(f"warning: cannot write the cache {path}: {e}", file=sys.stderr)
        if tmp is not None:
            tmp.unlink(missing_ok=True)
