"""The browser target: the exported ONNX file on onnxruntime-web's wasm build in headless Chromium, as the upload
page's browser mode runs it (the same ``cifar10_pipeline.web`` modules), behind the export's ``Runner`` protocol.

Chromium loads everything from a server of this process on 127.0.0.1 (a blank page, the web modules, the ort files,
the model, and each chunk of images as raw bytes); every other request is aborted, so the target never touches the
network. Logits come back as numbers: float32 in the page, float32 here.
"""

from __future__ import annotations

import http.server
import os
import shutil
import threading
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlsplit

import numpy as np

from cifar10_pipeline import web
from cifar10_pipeline.contract import INPUT_NAME, OUTPUT_NAME

CHUNK = 1000  # images per call into the page: 3 MB of 32x32 RGB
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-extensions"]
OCTETS = "application/octet-stream"
PAGE = b"<!doctype html><meta charset='utf-8'><title>cifar10-pipeline browser target</title>"

# the page side: the web modules loaded once, one session on the model; a chunk's raw uint8 pixels fetched from
# /images (a string argument of megabytes crawls through Playwright's protocol), float32 logits out
_OPEN = """async () => {
  const runtime = await import("/web/runtime.mjs");
  const { version } = await runtime.loadOrt();
  const bytes = new Uint8Array(await (await fetch("/model.onnx")).arrayBuffer());
  window.target = { runtime, session: await runtime.openSession(bytes) };
  return version;
}"""
_INFER = """async (shape) => {
  const pixels = new Uint8Array(await (await fetch("/images", { cache: "no-store" })).arrayBuffer());
  return Array.from(await window.target.runtime.logits(window.target.session, pixels, shape));
}"""


_TIME = """async (shape) => {
  const pixels = new Uint8Array(await (await fetch("/images", { cache: "no-store" })).arrayBuffer());
  const [count, ...image] = shape;
  const size = pixels.length / count;
  const times = [];
  for (let i = 0; i < count; i++) {
    const one = pixels.slice(i * size, (i + 1) * size);
    const start = performance.now();
    await window.target.runtime.logits(window.target.session, one, [1, ...image]);
    times.push(performance.now() - start);
  }
  return times;
}"""


def find_chromium() -> Path:
    """The Chromium to drive: $CHROMIUM, else ``chromium`` (Debian's package) or ``chromium-browser`` on the PATH."""
    found = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        raise RuntimeError("no Chromium found: install Debian's `chromium` package (make system-deps) or set CHROMIUM "
                           "to a Chromium executable")
    return Path(found)


class BrowserRunner:
    """``BrowserRunner(model_path)``: a context manager that opens the model in headless Chromium on entering and
    closes the browser on leaving; ``infer`` runs uint8 ``[N, H, W, C]`` images (any N: chunks of ``chunk``) to
    float32 logits ``[N, classes]``, ``latencies`` times batch-1 runs inside the page. Use it from one thread
    (Playwright's sync API)."""

    def __init__(self, model_path: Path, *, chromium: Path | None = None, chunk: int = CHUNK):
        self.model_path = Path(model_path)
        self.chromium = chromium
        self.chunk = chunk
        self.name = "onnxruntime-web wasm (Chromium)"  # with both versions once the browser is open
        self.blocked: list[str] = []  # requests for anything but the local server, aborted
        self._server: http.server.ThreadingHTTPServer | None = None
        self._files: dict[str, tuple[bytes | Path, str]] = {}  # what the local server answers, by path
        self._encodings: dict[str, str | None] = {}  # their Content-Encoding, where one is needed
        self._playwright: Any = None
        self._browser: Any = None
        self._page: Any = None

    def __enter__(self) -> Self:
        if web.ort_version() is None:
            raise RuntimeError(web.missing_message())
        chromium = self.chromium or find_chromium()
        from playwright.sync_api import sync_playwright  # a test and benchmark dependency, needed here only

        self._files.update({"/": (PAGE, "text/html"), "/model.onnx": (self.model_path.read_bytes(), OCTETS)})
        self._files.update({f"/web/{name}": (path, web.media_type(path)) for name, path in web.served_files().items()})
        self._encodings = {f"/web/{name}": web.content_encoding(path) for name, path in web.served_files().items()}
        self._server = _serve(self._files, self._encodings)
        origin = f"http://127.0.0.1:{self._server.server_port}"
        try:
            self._playwright = sync_playwright().start()
            self._browser = self._playwright.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
            context = self._browser.new_context()
            context.route("**/*", lambda route: self._guard(route, origin))
            self._page = context.new_page()
            self._page.goto(origin + "/")
            version = self._page.evaluate(_OPEN)
        except BaseException:
            self.close()
            raise
        self.name = f"onnxruntime-web {version} wasm (Chromium {self._browser.version})"
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.close()

    def infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        page = self._opened()
        images = np.ascontiguousarray(feeds[INPUT_NAME], dtype=np.uint8)
        parts = []
        for start in range(0, len(images), self.chunk):
            part = images[start:start + self.chunk]
            self._files["/images"] = (part.tobytes(), OCTETS)
            values = page.evaluate(_INFER, list(part.shape))
            parts.append(np.asarray(values, dtype=np.float32).reshape(len(part), -1))
        return {OUTPUT_NAME: np.concatenate(parts) if parts else np.zeros((0, 0), np.float32)}

    def latencies(self, images: np.ndarray, runs: int) -> np.ndarray:
        """Seconds of each of ``runs`` batch-1 runs (float64 [runs]), cycling through uint8 ``images`` [N, H, W, C],
        timed in the page around the session's run (what a page waits for; ``infer`` adds a round trip through
        Playwright, some milliseconds): the table's ``latencies`` hook. The page's clock ticks in steps of 0.1 ms
        (coarsened where the page is not cross-origin isolated)."""
        page = self._opened()
        images = np.ascontiguousarray(images[np.arange(runs) % len(images)], dtype=np.uint8)
        self._files["/images"] = (images.tobytes(), OCTETS)
        return np.asarray(page.evaluate(_TIME, list(images.shape)), dtype=np.float64) / 1000

    def close(self) -> None:
        """Close the browser, Playwright and the local server (each once; safe to call again)."""
        if self._browser is not None:
            self._browser.close()
        if self._playwright is not None:
            self._playwright.stop()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        self._browser = self._playwright = self._server = self._page = None

    def _opened(self) -> Any:
        if self._page is None:
            raise RuntimeError("BrowserRunner is not open: use it as a context manager (with BrowserRunner(path) as r)")
        return self._page

    def _guard(self, route: Any, origin: str) -> None:
        url = route.request.url
        if f"{urlsplit(url).scheme}://{urlsplit(url).netloc}" == origin:
            route.continue_()
        else:
            self.blocked.append(url)
            route.abort()


def _serve(files: dict[str, tuple[bytes | Path, str]],
           encodings: dict[str, str | None]) -> http.server.ThreadingHTTPServer:
    """A server on 127.0.0.1 (a free port) in a daemon thread answering GET ``path`` with ``files[path]`` (bytes, or
    a file read on each request), its media type and ``encodings[path]`` as Content-Encoding; 404 for anything
    else."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = urlsplit(self.path).path
            body, media_type = files.get(path, (None, ""))
            if isinstance(body, Path):
                body = body.read_bytes() if body.is_file() else None
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", media_type)
            if encodings.get(path):
                self.send_header("Content-Encoding", encodings[path])
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:  # quiet: the runner's caller prints what matters
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, name="browser-target-server", daemon=True).start()
    return server
