"""The API's error type and the app's error handlers: every error is a JSON ``{"error": message}`` with its status,
Werkzeug's own (404, 405 with its Allow header, 413 for the body and for the multipart parser's limits) and an
unexpected exception's (500)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from cifar10_pipeline.inference.errors import ApiError
from tests.support.api import post_files
from tests.support.images import encode, png


def test_api_error_carries_its_status():
    e = ApiError(418, "short and stout")
    assert (e.status, e.message, str(e)) == (418, "short and stout", "short and stout")


def test_upload_over_the_limit_is_413(make_app):
    client = make_app(max_upload_bytes=5000).test_client()
    big = encode(Image.fromarray(np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)), "PNG")
    assert len(big) > 5000
    for response in (post_files(client, [("big.png", big)]), client.post("/predict", data=big, content_type="image/png")):
        assert response.status_code == 413 and "at most 5000 bytes accepted" in response.json["error"]
    assert post_files(client, [("small.png", png())]).status_code == 200  # the limit is not hit below it


@pytest.mark.parametrize("fields", [{f"f{i}": "x" for i in range(1200)}, {"text": "x" * 600_000}])
def test_multipart_parser_limits_are_413_saying_so(client, fields):
    response = client.post("/predict", data=fields, content_type="multipart/form-data")
    assert response.status_code == 413
    assert response.json["error"] == (
        "the multipart form has more than 1000 parts or a non-file field over 500000 bytes; "
        "send each image as a file field"
    )


def test_unknown_route_and_method_answer_json(client):
    assert client.get("/nope").status_code == 404 and "error" in client.get("/nope").json
    response = client.get("/predict")
    assert response.status_code == 405 and "Method Not Allowed" in response.json["error"]
    assert set(response.headers["Allow"].split(", ")) == {"POST", "OPTIONS"}  # RFC 9110: a 405 says what is allowed
