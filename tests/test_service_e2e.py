"""The service as it is deployed: its server (granian) in a fresh venv holding only the `serve` dependencies,
and the web page in a real headless browser (Debian's chromium driven by Playwright)."""

from __future__ import annotations

import http.client as http_client
import io
import json
import shutil
import socket
import subprocess
import sys
import threading
import time
import tomllib
import urllib.error
import urllib.request
import uuid
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from werkzeug.serving import make_server

from inference.app import create_app
from inference.config import ServiceConfig
from tests.support.onnx_models import CIFAR10_LABELS, reference_logits, write_model

REPO = Path(__file__).resolve().parents[1]
SERVE_DEPS = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]["serve"]
CONSTRAINTS = REPO / "constraints.txt"
CHROMIUM = "/usr/bin/chromium"  # Debian's package: Playwright cannot download its own browsers here
START_TIMEOUT_S = 60.0  # upper bound for a server to become ready; it takes about a second
MAX_UPLOAD_BYTES = 200_000  # the deployed server's upload limit in these tests

pytestmark = pytest.mark.slow


def png(colour=(200, 30, 60), size=(40, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, "PNG")
    return buf.getvalue()


def expected_label(colour, seed=0) -> str:
    pixels = np.broadcast_to(np.array(colour, np.uint8), (1, 32, 32, 3))
    return CIFAR10_LABELS[int(reference_logits(pixels, seed).argmax())]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method: str, url: str, body: bytes | None = None, content_type: str | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=body, method=method)
    if content_type:
        request.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def multipart(files: list[tuple[str, bytes]]) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
        f"Content-Type: application/octet-stream\r\n\r\n".encode() + data + b"\r\n"
        for name, data in files
    ]
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def predict(base: str, files: list[tuple[str, bytes]]) -> tuple[int, dict]:
    body, content_type = multipart(files)
    return http("POST", f"{base}/predict", body, content_type)


def post_chunked(base: str, body: bytes) -> tuple[int, dict]:
    """POST ``body`` as image/png in 64 KB chunks with no Content-Length (Transfer-Encoding: chunked)."""
    conn = http_client.HTTPConnection(base.removeprefix("http://"), timeout=30)
    chunks = (body[i:i + 65536] for i in range(0, len(body), 65536))
    conn.request("POST", "/predict", body=chunks, headers={"Content-Type": "image/png"}, encode_chunked=True)
    response = conn.getresponse()
    return response.status, json.loads(response.read())


def wait_ready(base: str, process: subprocess.Popen | None = None, log: Path | None = None) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            pytest.fail(f"the server exited with {process.returncode}:\n{log.read_text() if log else ''}")
        try:
            if http("GET", f"{base}/readyz")[0] == 200:
                return
        except (urllib.error.URLError, ConnectionError):
            pass
        time.sleep(0.1)
    pytest.fail(f"{base} not ready after {START_TIMEOUT_S} s:\n{log.read_text() if log else ''}")


# ---------------------------------------------------------------- the server in a fresh serve-only venv


@pytest.fixture(scope="module")
def serve_venv(tmp_path_factory) -> Path:
    """A new venv with only the `serve` extra's packages (pinned), as in the CPU image."""
    venv = tmp_path_factory.mktemp("serve") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [venv / "bin/pip", "install", "-q", "--disable-pip-version-check", "-c", CONSTRAINTS, *SERVE_DEPS],
        check=True,
        timeout=900,
    )
    return venv


@contextmanager
def server(venv: Path, app_dir: Path, model: Path, log: Path):
    """``python -m inference.server`` from ``venv``, serving the copy of ``inference/`` in ``app_dir``, as the
    images run it; yields (base URL, process)."""
    port = free_port()
    env = {
        "PATH": f"{venv / 'bin'}:/usr/bin:/bin",
        "HOME": str(app_dir),
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "INFERENCE_MODEL_PATH": str(model),
        "INFERENCE_MAX_UPLOAD_BYTES": str(MAX_UPLOAD_BYTES),
    }
    with log.open("wb") as out:
        process = subprocess.Popen(
            [venv / "bin/python", "-m", "inference.server"], cwd=app_dir, env=env, stdout=out, stderr=out
        )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, process, log)
        yield base, process
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_fresh_serve_venv_classifies_over_http_without_training_frameworks(serve_venv, tmp_path):
    for framework in ("torch", "tensorflow"):
        result = subprocess.run([serve_venv / "bin/python", "-c", f"import {framework}"], capture_output=True, text=True)
        assert result.returncode != 0 and "ModuleNotFoundError" in result.stderr, framework

    app_dir = tmp_path / "app"  # contract/ and inference/ alone, as in the image: nothing else of the repo
    for package in ("contract", "inference"):
        shutil.copytree(REPO / package, app_dir / package, ignore=shutil.ignore_patterns("__pycache__"))
    model = write_model(tmp_path / "model.onnx", seed=0)
    log = tmp_path / "server.log"
    with server(serve_venv, app_dir, model, log) as (base, process):
        status, answer = predict(base, [("red.png", png())])
        assert status == 200 and answer["predictions"][0]["label"] == expected_label((200, 30, 60))

        info = http("GET", f"{base}/info")[1]
        assert info["imported_frameworks"] == []
        maps = Path(f"/proc/{info['pid']}/maps").read_text()
        assert "onnxruntime" in maps  # the check below looks at the right process
        assert "torch" not in maps and "tensorflow" not in maps

        # bad input never kills the worker: same pid after, and it still answers
        bad = [b"", b"not an image", png()[:40], png()[: len(png()) // 2]]
        for data in bad:
            status, answer = predict(base, [("bad.png", data)])
            assert 400 <= status < 500 and answer["error"]
        assert http("POST", f"{base}/predict", b"x", "text/plain")[0] == 415
        # chunked bodies (no Content-Length): read in full below the limit, refused as too large above it
        assert post_chunked(base, png())[1]["predictions"][0]["label"] == expected_label((200, 30, 60))
        status, answer = post_chunked(base, png() + bytes(MAX_UPLOAD_BYTES))
        assert status == 413 and answer["error"] == f"request body is larger, at most {MAX_UPLOAD_BYTES} bytes accepted"
        assert http("GET", f"{base}/info")[1]["pid"] == info["pid"]
        assert predict(base, [("again.png", png())])[0] == 200

        # more concurrent clients than the server has threads
        results = []
        threads = [threading.Thread(target=lambda: results.append(predict(base, [("c.png", png())])[0])) for _ in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert results == [200] * 16
    assert process.returncode == 0  # a clean shutdown on SIGTERM
    assert "active providers ['CPUExecutionProvider']" in log.read_text()


# ---------------------------------------------------------------- the web page in a real browser


@pytest.fixture
def live_server(tmp_path):
    app = create_app(ServiceConfig(model_path=write_model(tmp_path / "model.onnx", seed=0), reload_poll_s=0))
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join()
    app.extensions["inference"].close()


@pytest.fixture
def page(live_server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
        )
        page = browser.new_page()
        page.goto(live_server)
        yield page
        browser.close()


def shown_result(page, state: str) -> tuple[str, str]:
    page.wait_for_selector(f"#result[data-state={state}]", timeout=30_000)
    return page.text_content("#label"), page.text_content("#error")


def test_browser_upload_shows_the_apis_label(page, live_server, tmp_path):
    upload = png((200, 30, 60))
    page.set_input_files("#file", files=[{"name": "red.png", "mimeType": "image/png", "buffer": upload}])
    label, error = shown_result(page, "done")
    status, answer = predict(live_server, [("red.png", upload)])
    prediction = answer["predictions"][0]
    assert status == 200 and error == ""
    assert label == prediction["label"] == expected_label((200, 30, 60))
    assert page.text_content("#probability") == f"{100 * prediction['probability']:.1f} %"
    assert page.locator("#bars .row").count() == len(CIFAR10_LABELS)  # a bar per class
    assert page.text_content("#bars .row.top span") == label
    page.screenshot(path=str(tmp_path / "page.png"))


def test_browser_drag_and_drop(page, live_server):
    colour = (20, 20, 220)
    upload = png(colour)
    assert expected_label(colour) != expected_label((200, 30, 60))  # a different answer than the upload test
    data_transfer = page.evaluate_handle(
        """(bytes) => {
            const transfer = new DataTransfer();
            transfer.items.add(new File([new Uint8Array(bytes)], "blue.png", { type: "image/png" }));
            return transfer;
        }""",
        list(upload),
    )
    page.dispatch_event("#drop", "drop", {"dataTransfer": data_transfer})
    label, _ = shown_result(page, "done")
    assert label == predict(live_server, [("blue.png", upload)])[1]["predictions"][0]["label"] == expected_label(colour)


def test_browser_shows_the_apis_error(page, live_server):
    upload = b"this is not an image"
    page.set_input_files("#file", files=[{"name": "notes.txt", "mimeType": "text/plain", "buffer": upload}])
    label, error = shown_result(page, "error")
    status, answer = predict(live_server, [("notes.txt", upload)])
    assert status == 415 and label == "" and error == answer["error"]


# ---------------------------------------------------------------- the serving benchmark


def test_benchmark_smoke_mode_runs_and_reports(tmp_path):
    out = tmp_path / "bench"
    subprocess.run([sys.executable, "-m", "benchmarks.service", "--smoke", "--out", str(out)], cwd=REPO, check=True,
                   capture_output=True, timeout=600)
    report = json.loads((out / "service.json").read_text())
    servers = [row["server"] for row in report["load"]]
    assert servers == ["onnxruntime, batching on", "onnxruntime, batching off", "naive: Flask + torch eager, batch 1"]
    for row in report["load"]:
        assert row["requests"] > 0 and row["failed"] == 0 and row["p50_ms"] <= row["p99_ms"]
    assert report["load"][0]["mean_batch_size"] >= 1 and report["load"][1]["mean_batch_size"] == 1
    assert [row["engine"].split()[0] for row in report["engines"]] == ["torch", "onnxruntime"]
    assert report["engines"][0]["max_abs_logit_diff"] < 1e-3  # the same weights in both engines
    assert report["footprint"]["start_to_ready_s"] > 0
    assert "| onnxruntime, batching on |" in (out / "service.md").read_text()
