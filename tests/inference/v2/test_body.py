"""The v2 request body: gzip and deflate (zlib) inflated within the upload limit, the JSON header split at
Inference-Header-Content-Length; a body that cannot be read gets a 4xx saying why."""

from __future__ import annotations

import gzip
import json
import zlib

import numpy as np
import pytest

from tests.support.v2 import (HEADER_LENGTH, INFER, binary_body, binary_case, binary_input, image_input,
                              onnxruntime_logits, pixels)


# HTTP's "deflate" is the zlib format (RFC 9110 8.4.1.2), what zlib.compress and tritonclient send
ENCODERS = {"gzip": gzip.compress, "deflate": zlib.compress}


@pytest.mark.parametrize("encoding", ENCODERS)
def test_compressed_request_body(client, model_path, encoding):
    images = pixels(1)
    body = ENCODERS[encoding](json.dumps({"inputs": [image_input(images)]}).encode())
    response = client.post(INFER, data=body, headers={"Content-Encoding": encoding}, content_type="application/json")
    assert response.status_code == 200, response.json
    np.testing.assert_allclose(response.json["outputs"][0]["data"], onnxruntime_logits(model_path, images)[0],
                               atol=1e-6)


@pytest.mark.parametrize("encoding", ENCODERS)
def test_compressed_binary_tensor_body_is_split_after_inflating(client, model_path, encoding):
    # Inference-Header-Content-Length counts the inflated bytes: the JSON header is cut from the inflated body
    images = pixels(2, seed=4)
    body, headers = binary_body({"inputs": [binary_input(images)]}, images.tobytes())
    response = client.post(INFER, data=ENCODERS[encoding](body), headers={**headers, "Content-Encoding": encoding},
                           content_type="application/octet-stream")
    assert response.status_code == 200, response.json
    np.testing.assert_allclose(np.reshape(response.json["outputs"][0]["data"], (2, 10)),
                               onnxruntime_logits(model_path, images), atol=1e-6)


BAD_BODIES = {
    # name: ((body, headers), status, a part of the error message)
    "malformed-json": ((b'{"inputs": [', {}), 400, "the inference request is not valid JSON"),
    "not-utf8": ((b'{"id": "\xff"}', {}), 400, "not valid JSON"),
    "nested-deep": ((b"[" * 100_000 + b"]" * 100_000, {}), 400, "not valid JSON"),
    "huge-number": ((b'{"id": ' + b"9" * 5000 + b"}", {}), 400, "not valid JSON"),
    "empty-body": ((b"", {}), 400, "not valid JSON"),
    "header-length-text": (binary_case(length="ten"), 400, f"{HEADER_LENGTH} must be a byte count"),
    "header-length-negative": (binary_case(length="-1"), 400, f"{HEADER_LENGTH} must be a byte count"),
    "header-length-past-the-body": (binary_case(length="99999"), 400, "from 0 to the body's"),
    "header-length-cuts-the-json": (binary_case(length="10"), 400, "not valid JSON"),
    "unknown-encoding": ((b"{}", {"Content-Encoding": "br"}), 415, "Content-Encoding 'br' is not accepted"),
    "gzip-garbage": ((b"not gzip", {"Content-Encoding": "gzip"}), 400, "cannot be inflated"),
    "gzip-cut-short": ((gzip.compress(b'{"inputs": []}')[:12], {"Content-Encoding": "gzip"}), 400, "cut short"),
    "deflate-garbage": ((b"not zlib", {"Content-Encoding": "deflate"}), 400, "the deflate body cannot be inflated"),
    "deflate-cut-short": ((zlib.compress(b'{"inputs": []}')[:8], {"Content-Encoding": "deflate"}), 400,
                          "the deflate body is cut short"),
}


@pytest.mark.parametrize("case", BAD_BODIES)
def test_bad_bodies_get_a_4xx_saying_what_is_wrong(client, case):
    (body, headers), status, message = BAD_BODIES[case]
    response = client.post(INFER, data=body, headers=headers, content_type="application/octet-stream")
    assert response.status_code == status and message in response.json["error"], response.json


def test_bodies_over_the_upload_limit_are_413(make_app):
    client = make_app(max_upload_bytes=50_000).test_client()
    images = pixels(2)  # 6144 pixel values: about 25 KB as JSON, 6 KB as binary
    assert client.post(INFER, json={"inputs": [image_input(images)]}).status_code == 200
    response = client.post(INFER, json={"inputs": [image_input(pixels(5))]})
    assert response.status_code == 413 and "at most 50000 bytes accepted" in response.json["error"]
    padded = json.dumps({"inputs": [image_input(pixels(1))], "id": " " * 100_000}).encode()
    for encoding, compress in ENCODERS.items():  # a few hundred bytes that inflate past the limit
        response = client.post(INFER, data=compress(padded), headers={"Content-Encoding": encoding})
        assert response.status_code == 413, encoding
        assert f"the {encoding} body inflates to more than 50000 bytes" in response.json["error"]
