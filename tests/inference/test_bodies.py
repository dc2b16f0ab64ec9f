"""The upload limit over real HTTP, as deployed (``python -m cifar10_pipeline.inference.server``, granian): bodies without a
Content-Length (Transfer-Encoding: chunked), multipart forms and raw images, just and far over the limit, get a
413 JSON answer; the same bodies under the limit are classified."""

from __future__ import annotations

import pytest

from harness.server import served
from tests.support.images import png
from tests.support.net import multipart, post_chunked
from tests.support.onnx_models import write_model
from tests.support.reference import expected_label

MAX_UPLOAD_BYTES = 200_000
TOO_LARGE = f"request body is larger, at most {MAX_UPLOAD_BYTES} bytes accepted"


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("limits")
    settings = {"INFERENCE_RELOAD_POLL_S": "0", "INFERENCE_MODEL_PATH": str(write_model(tmp / "model.onnx", seed=0)),
                "INFERENCE_MAX_UPLOAD_BYTES": str(MAX_UPLOAD_BYTES)}
    with served(settings, tmp / "server.log") as url:
        yield url

def chunked_multipart(base: str, data: bytes) -> tuple[int, dict]:
    body, content_type = multipart([("a.png", data)])
    return post_chunked(base, body, content_type)


@pytest.mark.parametrize("padding", [MAX_UPLOAD_BYTES, 5 * MAX_UPLOAD_BYTES])  # just over, far over
@pytest.mark.parametrize("send", [chunked_multipart, post_chunked], ids=["multipart", "raw"])
def test_chunked_bodies_over_the_limit_are_413_json(base, send, padding):
    status, answer = send(base, png() + bytes(padding))  # trailing bytes after a PNG's end are ignored
    assert (status, answer) == (413, {"error": TOO_LARGE})
    status, answer = send(base, png())  # the same connection kind under the limit, after a refusal
    assert status == 200 and answer["predictions"][0]["label"] == expected_label((200, 30, 60))
