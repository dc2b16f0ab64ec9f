"""Talking to the service's /v2 routes: requests in JSON or binary tensors, and reading their answers."""

from __future__ import annotations

import json
import struct

import numpy as np
import onnxruntime as ort

from tests.support.onnx_models import CIFAR10_LABELS

INFER = "/v2/models/classifier/infer"
HEADER_LENGTH = "Inference-Header-Content-Length"


def pixels(n: int, seed: int = 1, shape=(32, 32, 3)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, *shape), dtype=np.uint8)


def onnxruntime_logits(path, images: np.ndarray) -> np.ndarray:
    """The file's logits from a direct onnxruntime call, nothing of the service in between."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(["logits"], {"image": images})[0]


def image_input(images: np.ndarray, nested: bool = False, **overrides) -> dict:
    data = images.tolist() if nested else images.ravel().tolist()
    return {"name": "image", "datatype": "UINT8", "shape": list(images.shape), "data": data, **overrides}


def binary_body(header: dict, *chunks: bytes) -> tuple[bytes, dict]:
    """A binary-tensor request: the JSON header, then ``chunks``; with its Inference-Header-Content-Length."""
    json_part = json.dumps(header).encode()
    return json_part + b"".join(chunks), {HEADER_LENGTH: str(len(json_part))}


def binary_input(images: np.ndarray) -> dict:
    shape = list(images.shape)
    return {"name": "image", "datatype": "UINT8", "shape": shape, "parameters": {"binary_data_size": images.size}}


def split_binary_response(response) -> tuple[dict, bytes]:
    assert response.status_code == 200, response.get_data()
    assert response.mimetype == "application/octet-stream"
    length = int(response.headers[HEADER_LENGTH])
    data = response.get_data()
    return json.loads(data[:length]), data[length:]


def parse_bytes_tensor(raw: bytes) -> list[str]:
    """Triton's serialized BYTES: each element a little-endian uint32 length, then its bytes."""
    strings, offset = [], 0
    while offset < len(raw):
        (n,) = struct.unpack_from("<I", raw, offset)
        strings.append(raw[offset + 4:offset + 4 + n].decode())
        offset += 4 + n
    return strings


def good(**overrides) -> dict:
    return {"inputs": [image_input(pixels(1))], **overrides}


def with_input(**overrides) -> dict:
    return {"inputs": [image_input(pixels(1), **overrides)]}


def with_output(**parameters) -> dict:
    return good(outputs=[{"name": "logits", "parameters": parameters}])


def binary_tensor(size=3072, **overrides) -> dict:
    shape = [1, 32, 32, 3]
    return {"name": "image", "datatype": "UINT8", "shape": shape, "parameters": {"binary_data_size": size}, **overrides}


def binary_case(size=3072, sent=3072, length=None, **overrides) -> tuple[bytes, dict]:
    body, headers = binary_body({"inputs": [binary_tensor(size, **overrides)]}, bytes(sent))
    if length is not None:
        headers[HEADER_LENGTH] = length
    return body, headers


def expected_classes(logits: np.ndarray, k: int) -> list[list[tuple[int, str]]]:
    return [[(int(i), CIFAR10_LABELS[i]) for i in np.argsort(-row, kind="stable")[:k]] for row in logits]


def check_classification(strings: list[str], logits: np.ndarray, k: int) -> None:
    """``"score:index:label"`` strings, row-major [N, k]: the k best of each row, the score the logit."""
    rows = [strings[i:i + k] for i in range(0, len(strings), k)]
    parsed = [[s.split(":") for s in row] for row in rows]
    assert [[(int(i), label) for _, i, label in row] for row in parsed] == expected_classes(logits, k)
    scores = np.array([[float(score) for score, _, _ in row] for row in parsed])
    np.testing.assert_allclose(scores, np.take_along_axis(logits, np.argsort(-logits, kind="stable")[:, :k], 1),
                               rtol=1e-6, atol=1e-6)
