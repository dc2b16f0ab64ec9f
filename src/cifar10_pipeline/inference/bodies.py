"""Reading a request's whole body within the upload limit, for every endpoint that takes raw bytes."""

from __future__ import annotations

from flask import Request

from cifar10_pipeline.inference.errors import ApiError


def read_body(req: Request, max_bytes: int) -> bytes:
    """The body's bytes; 413 when it is over ``max_bytes``.

    Flask answers a Content-Length over the limit itself; a body without one (chunked) is cut at the limit
    without a word, so one byte further is looked for.
    """
    data = req.get_data(cache=False)
    if req.content_length is None and len(data) >= max_bytes and req.environ["wsgi.input"].read(1):
        raise ApiError(413, f"request body is larger, at most {max_bytes} bytes accepted")
    return data
