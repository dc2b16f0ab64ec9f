"""What every server is sent, the same image in the form each takes, and the label a server answers for it."""

from __future__ import annotations

import http.client
import io
import json
from pathlib import Path

import numpy as np
from PIL import Image

from benchmarks.peers import BOUNDARY, Bodies, Target
from cifar10_pipeline.contract import INPUT_NAME
from cifar10_pipeline.inference.v2.body import HEADER_LENGTH
from harness.v2_requests import http_request


def make_bodies(workdir: Path, shape: tuple[int, int, int]) -> Bodies:
    """The same random PNG as the serving benchmark's, at the model's input ``shape`` (H, W, C), and its tensor
    forms."""
    height, width, channels = shape
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).convert(
        "RGB" if channels == 3 else "L")
    png = io.BytesIO()
    image.save(png, "PNG")
    pixels = np.asarray(image, dtype=np.uint8).reshape(1, height, width, channels)

    multipart = workdir / "upload.multipart"
    multipart.write_bytes(b"".join([
        f"--{BOUNDARY}\r\n".encode(),
        b'Content-Disposition: form-data; name="image"; filename="upload.png"\r\n',
        b"Content-Type: image/png\r\n\r\n", png.getvalue(), f"\r\n--{BOUNDARY}--\r\n".encode(),
    ]))
    tensor = {"name": INPUT_NAME, "datatype": "UINT8", "shape": list(pixels.shape)}
    v2_json = workdir / "infer.json"
    v2_json.write_text(json.dumps({"inputs": [{**tensor, "data": pixels.ravel().tolist()}]}))
    binary, binary_headers = http_request(pixels)
    v2_binary = workdir / "infer.bin"
    v2_binary.write_bytes(binary)
    sizes = {"png": len(png.getvalue()), "multipart": multipart.stat().st_size, "v2_json": v2_json.stat().st_size,
             "v2_binary": v2_binary.stat().st_size}
    return Bodies(pixels, multipart, v2_json, v2_binary, binary_headers, sizes)


def answer(target: Target, port: int, labels: list[str]) -> str:
    """The label a server answers for the image: from its JSON label, or the argmax of its logits (V2: JSON or
    binary)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("POST", target.path, target.body.read_bytes(), target.headers)
    response = conn.getresponse()
    data = response.read()
    if response.status != 200:
        raise RuntimeError(f"{target.name}: HTTP {response.status}: {data[:500]!r}")
    header_length = response.getheader(HEADER_LENGTH)
    if header_length is not None:  # binary tensor data: the JSON header, then the logits as raw float32
        logits = np.frombuffer(data[int(header_length):], "<f4")
    else:
        body = json.loads(data)
        if "predictions" in body:  # this service's /predict
            return body["predictions"][0]["label"]
        if "label" in body:  # BentoML's endpoint
            return body["label"]
        logits = np.asarray(body["outputs"][0]["data"], dtype=np.float32)
    return labels[int(logits.argmax())]
