"""The browser side: JavaScript modules and onnxruntime-web's wasm build, served by the service to its upload page
and by the export's browser target to headless Chromium (standard library only: no arrows out).

- ``runtime.mjs``: loads onnxruntime-web from ``ort/`` beside it, opens a model, runs uint8 ``[N, H, W, C]``
  images to float32 logits, classifies files as ``/predict`` does; the page and ``export.targets.browser`` share it.
- ``pixels.mjs``: ``contract.images.decode_image`` in JavaScript (alpha on white, Pillow's BILINEAR resize with
  ``reducing_gap=3.0``, ITU-R 601-2 gray), so the browser feeds the model the server's pixels.
- ``ort/``: the files of onnxruntime-web (npm, pinned by the repository's ``web/package-lock.json``) that the
  pages load, copied there by ``make web`` (this file run as a script); not in git. Without them the page says that
  browser mode is not installed, and the browser target cannot run.

Run as a script (``python3 src/cifar10_pipeline/web/__init__.py DIST``) it copies ``ORT_FILES`` from the package's
``dist/`` folder into ``ort/`` (the wasm binary gzip-compressed: 15 MB become 4 MB in the serving image, and are sent
so, with Content-Encoding: gzip) and writes ``ort/VERSION``.
"""

from __future__ import annotations

import gzip
import json
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ORT_DIR = HERE / "ort"
# onnxruntime-web's wasm-only ES module bundle (its Emscripten glue inside) and the one binary it loads: SIMD,
# threads when the page is cross-origin isolated (one thread otherwise). The WebGPU, WebGL and JSEP builds are left out.
ORT_FILES = ("ort.wasm.bundle.min.mjs", "ort-wasm-simd-threaded.wasm")
GZIPPED = (".wasm",)  # kept and served gzip-compressed
VERSION_FILE = ORT_DIR / "VERSION"  # onnxruntime-web's version, written last: its presence means a complete copy
MODULES = ("runtime.mjs", "pixels.mjs")  # this package's own JavaScript
# media types by suffix: module scripts must be JavaScript, and wasm streaming compilation needs application/wasm
MEDIA_TYPES = {".mjs": "text/javascript", ".wasm": "application/wasm", ".html": "text/html", "": "text/plain"}
MISSING = ("onnxruntime-web is not installed in this service: its files are missing from {dir} (run `make web`, which "
           "needs npm, before installing the package or building the image)")


def stored(name: str) -> Path:
    """The file in ``ort/`` that holds onnxruntime-web's file ``name`` (``name.gz`` for the GZIPPED ones)."""
    return ORT_DIR / (name + ".gz" if name.endswith(GZIPPED) else name)


def served_files() -> dict[str, Path]:
    """URL path under the web root (``runtime.mjs``, ``ort/ort.wasm.bundle.min.mjs``, ...) -> file, for every file
    the pages may load; the ort files are listed whether or not ``make web`` put them there."""
    return {**{name: HERE / name for name in MODULES},
            **{f"ort/{name}": stored(name) for name in (*ORT_FILES, VERSION_FILE.name)}}


def media_type(path: Path) -> str:
    """The media type of what ``path`` holds (a ``.gz`` file: of what it decompresses to)."""
    return MEDIA_TYPES.get(Path(path.name.removesuffix(".gz")).suffix, "application/octet-stream")


def content_encoding(path: Path) -> str | None:
    """``gzip`` for a file to send as it is stored, compressed (the browser decompresses it); else None."""
    return "gzip" if path.suffix == ".gz" else None


def ort_version() -> str | None:
    """The installed onnxruntime-web's version, or None when ``make web`` has not copied it (or not completely)."""
    try:
        version = VERSION_FILE.read_text().strip()
    except OSError:
        return None
    return version if all(stored(name).is_file() for name in ORT_FILES) else None


def missing_message() -> str:
    return MISSING.format(dir=ORT_DIR)


def install(dist: Path) -> str:
    """Copy ``ORT_FILES`` from onnxruntime-web's ``dist`` folder (``node_modules/onnxruntime-web/dist``) into
    ``ort/``, then its version into ``ort/VERSION``; returns the version."""
    version = json.loads((dist.parent / "package.json").read_text())["version"]
    VERSION_FILE.unlink(missing_ok=True)  # an interrupted copy leaves no VERSION: counted as missing
    ORT_DIR.mkdir(exist_ok=True)
    for name in ORT_FILES:
        if name.endswith(GZIPPED):  # mtime 0: the same bytes from the same input, for reproducible images
            stored(name).write_bytes(gzip.compress((dist / name).read_bytes(), compresslevel=9, mtime=0))
        else:
            shutil.copyfile(dist / name, stored(name))
    VERSION_FILE.write_text(version + "\n")
    return version


if __name__ == "__main__":
    if len(sys.argv) != 2 or not Path(sys.argv[1], ORT_FILES[0]).is_file():
        sys.exit(f"usage: {sys.argv[0]} node_modules/onnxruntime-web/dist (the folder holding {', '.join(ORT_FILES)})")
    print(f"onnxruntime-web {install(Path(sys.argv[1]))}: {', '.join(ORT_FILES)} -> {ORT_DIR}")
