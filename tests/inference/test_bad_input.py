"""Refused input: a 4xx whose message says what is wrong, for bad files, bodies, parameters and sizes over
the limits; corrupted files never cause a 500."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from tests.support.api import post_files
from tests.support.images import claiming, encode, png, png_claiming, solid


def truncated(fmt: str) -> bytes:
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    data = encode(Image.fromarray(noise), fmt)
    return data[: len(data) // 2]


BAD_FILES = {
    # name: (bytes, status, a part of the error message)
    "not-an-image": (b"hello, this is text", 415, "is not a PNG, JPEG, GIF, BMP or WebP image"),
    "empty-file": (b"", 400, "is empty (0 bytes)"),
    "truncated-png": (truncated("PNG"), 400, "image file is truncated"),
    "truncated-jpeg": (truncated("JPEG"), 400, "image file is truncated"),
    "truncated-gif": (truncated("GIF"), 400, "image file is truncated"),
    "truncated-header": (png()[:20], 400, "has a broken header"),
    "tiff-is-not-accepted": (encode(solid(), "TIFF"), 415, "is not a PNG, JPEG, GIF, BMP or WebP image"),
    "bomb-over-the-limit": (png_claiming(6000, 5000), 413, "30000000 pixels, at most 24000000"),
    "bomb-far-over-the-limit": (png_claiming(40000, 40000), 413, "decompression bomb"),
    "absurd-dimensions": (png_claiming(1, 2**31 - 1), 413, "decompression bomb"),
    # the same guards for every format: just over the limit (the service's check), far over it (Pillow's)
    **{f"{fmt.lower()}-bomb-over-the-limit": (claiming(fmt, 6000, 5000), 413, "30000000 pixels, at most 24000000")
       for fmt in ("JPEG", "GIF", "WEBP")},
    "jpeg-bomb-far-over-the-limit": (claiming("JPEG", 65000, 65000), 413, "decompression bomb"),
    "gif-bomb-far-over-the-limit": (claiming("GIF", 65535, 65535), 413, "decompression bomb"),
    "webp-bomb-far-over-the-limit": (claiming("WEBP", 16383, 16383), 413, "decompression bomb"),
    "zero-width": (png_claiming(0, 10), 415, "header is cut short"),
}


@pytest.mark.parametrize("case", BAD_FILES)
def test_bad_files_get_a_4xx_saying_what_is_wrong(client, case):
    data, status, message = BAD_FILES[case]
    response = post_files(client, [(f"{case}.bin", data)])
    assert response.status_code == status, response.json
    assert response.is_json and message in response.json["error"]
    assert f"{case}.bin" in response.json["error"]  # names the offending file


@pytest.mark.parametrize(
    "content_type, body, status, message",
    [
        ("text/plain", b"hello", 415, "Content-Type 'text/plain' is not accepted"),
        ("application/json", b'{"image": 1}', 415, "Content-Type 'application/json' is not accepted"),
        (None, png(), 415, "no Content-Type is not accepted"),
        ("image/png", b"", 400, "the request body is empty"),
        ("image/jpeg", b"\xff\xd8\xff garbage", 415, "'body' is not a PNG, JPEG, GIF, BMP or WebP image"),
        ("multipart/form-data; boundary=xyz", b"--xyz--\r\n", 400, "holds no file"),
    ],
)
def test_bad_bodies_get_a_4xx_saying_what_is_wrong(client, content_type, body, status, message):
    headers = {"Content-Type": content_type} if content_type else {}
    response = client.post("/predict", data=body, headers=headers)
    assert response.status_code == status and message in response.json["error"]


def test_form_without_file_is_refused(client):
    response = client.post("/predict", data={"name": "cat"}, content_type="multipart/form-data")
    assert response.status_code == 400 and "holds no file" in response.json["error"]


@pytest.mark.parametrize("top_k", ["abc", "0", "11", "-1", "2.5", ""])
def test_bad_top_k_is_refused(client, top_k):
    response = post_files(client, [("a.png", png())], f"?top_k={top_k}")
    assert response.status_code == 400
    assert response.json["error"] == f"top_k must be an integer from 1 to 10, got {top_k!r}"


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


def test_too_many_files_is_413(make_app):
    client = make_app(max_files=3).test_client()
    response = post_files(client, [(f"{i}.png", png()) for i in range(4)])
    assert response.status_code == 413 and response.json["error"] == "4 files in one request, at most 3 accepted"
    assert post_files(client, [(f"{i}.png", png()) for i in range(3)]).status_code == 200


def test_configured_pixel_limit_applies(make_app):
    client = make_app(max_pixels=1000).test_client()
    response = post_files(client, [("a.png", png(size=(40, 30)))])
    assert response.status_code == 413 and "40x30 = 1200 pixels, at most 1000" in response.json["error"]


def test_unknown_route_and_method_answer_json(client):
    assert client.get("/nope").status_code == 404 and "error" in client.get("/nope").json
    response = client.get("/predict")
    assert response.status_code == 405 and "Method Not Allowed" in response.json["error"]
    assert set(response.headers["Allow"].split(", ")) == {"POST", "OPTIONS"}  # RFC 9110: a 405 says what is allowed


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF", "BMP", "WEBP"])
def test_corrupted_files_never_cause_a_500(client, fmt):
    rng = np.random.default_rng(7)
    good = encode(Image.fromarray(rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)), fmt)
    statuses = set()
    for _ in range(40):
        data = bytearray(good)
        for position in rng.integers(0, len(data), size=rng.integers(1, 8)):
            data[position] = rng.integers(0, 256)
        response = post_files(client, [("fuzz", bytes(data[: rng.integers(1, len(data) + 1)]))])
        statuses.add(response.status_code)
        assert response.status_code == 200 or (400 <= response.status_code < 500 and response.json["error"])
    assert statuses - {200}  # some of the mutations were refused, so the refusal path ran
    assert post_files(client, [("good", good)]).status_code == 200
