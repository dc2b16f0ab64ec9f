"""The v2 request body: gzip and deflate inflated within the upload limit, the JSON header split at
Inference-Header-Content-Length; a body that cannot be read gets a 4xx saying why."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest

from tests.support.v2 import HEADER_LENGTH, INFER, binary_case, image_input, onnxruntime_logits, pixels


def test_gzip_request_body(client, model_path):
    images = pixels(1)
    body = gzip.compress(json.dumps({"inputs": [image_input(images)]}).encode())
    response = client.post(INFER, data=body, headers={"Content-Encoding": "gzip"}, content_type="application/json")
    assert response.status_code == 200, response.json
    np.testing.assert_allclose(response.json["outputs"][0]["data"], onnxruntime_logits(model_path, images)[0],
                               atol=1e-6)


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
    bomb = gzip.compress(json.dumps({"inputs": [image_input(pixels(1))], "id": " " * 100_000}).encode())
    response = client.post(INFER, data=bomb, headers={"Content-Encoding": "gzip"})
    assert response.status_code == 413 and "inflates to more than 50000 bytes" in response.json["error"]
