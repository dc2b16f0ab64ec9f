"""HTTP calls to a served API: JSON requests, multipart and chunked uploads. The server itself, free ports and
waiting for /readyz are ``harness.server``'s."""

from __future__ import annotations

import http.client as http_client
import json
import urllib.error
import urllib.request
import uuid


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
