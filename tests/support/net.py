"""A served API over real HTTP: free ports, JSON requests, multipart and chunked uploads, waiting for /readyz."""

from __future__ import annotations

import contextlib
import http.client as http_client
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.paths import REPO

START_TIMEOUT_S = 60.0  # upper bound for a server to become ready; it takes about a second


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


def post_chunked(base: str, body: bytes, content_type: str = "image/png") -> tuple[int, dict]:
    """POST ``body`` to /predict in 64 KB chunks with no Content-Length (Transfer-Encoding: chunked)."""
    conn = http_client.HTTPConnection(base.removeprefix("http://"), timeout=30)
    chunks = (body[i:i + 65536] for i in range(0, len(body), 65536))
    try:
        conn.request("POST", "/predict", body=chunks, headers={"Content-Type": content_type}, encode_chunked=True)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server answered (a 413) and closed before the whole body was sent: its answer is still there
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


@contextlib.contextmanager
def served(settings: dict[str, str], log: Path, *args: str) -> Iterator[str]:
    """``python -m cifar10_pipeline.inference.server ARGS`` on 127.0.0.1 and a free port, with the environment ``settings`` added
    and its output in ``log``; yields its base URL once /readyz answers 200, stops it on exit."""
    port = free_port()
    env = {**os.environ, "HOST": "127.0.0.1", "PORT": str(port), **settings}
    with log.open("wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "cifar10_pipeline.inference.server", *args], cwd=REPO, env=env, stdout=out,
                                   stderr=out)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, process, log)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=30)
