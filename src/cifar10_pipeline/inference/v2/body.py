"""A v2 inference request's body -> (JSON header, binary part): inflated when gzip or deflate, split at
``Inference-Header-Content-Length`` (the binary tensor data extension), the header parsed as JSON."""

from __future__ import annotations

import json
import zlib
from typing import Any

from flask import Request

from cifar10_pipeline.inference.bodies import read_body
from cifar10_pipeline.inference.errors import ApiError

HEADER_LENGTH = "Inference-Header-Content-Length"


def read_request(req: Request, max_bytes: int) -> tuple[Any, bytes]:
    """(the parsed JSON header, not yet validated; the binary bytes after it) of ``req``'s body."""
    return split(inflate(read_body(req, max_bytes), req.headers.get("Content-Encoding", ""), max_bytes),
                 req.headers.get(HEADER_LENGTH))


def inflate(body: bytes, content_encoding: str, max_bytes: int) -> bytes:
    """``body`` inflated when gzip or deflate; 413 when it inflates past ``max_bytes``, 415 for another encoding."""
    encoding = content_encoding.strip().lower() or "identity"
    if encoding == "identity":
        return body
    if encoding not in ("gzip", "deflate"):
        raise ApiError(415, f"Content-Encoding {encoding!r} is not accepted; send identity, gzip or deflate")
    inflater = zlib.decompressobj(32 + zlib.MAX_WBITS)  # zlib or gzip header, detected
    try:
        inflated = inflater.decompress(body, max_bytes + 1)
    except zlib.error as e:
        raise ApiError(400, f"the {encoding} body cannot be inflated: {e}") from None
    if len(inflated) > max_bytes:
        raise ApiError(413, f"the {encoding} body inflates to more than {max_bytes} bytes, the most accepted")
    if not inflater.eof:
        raise ApiError(400, f"the {encoding} body is cut short")
    return inflated


def split(body: bytes, header_length: str | None) -> tuple[Any, bytes]:
    """(parsed JSON, binary data after it): ``header_length`` bytes of JSON, or all of it when that is None."""
    if header_length is None:
        json_part, binary = body, b""
    else:
        raw = header_length.strip()
        if not (raw.isascii() and raw.isdigit()) or int(raw) > len(body):
            raise ApiError(400, f"{HEADER_LENGTH} must be a byte count from 0 to the body's {len(body)} bytes, "
                                f"got {raw!r:.40}")
        json_part, binary = body[: int(raw)], body[int(raw):]
    try:
        return json.loads(json_part), binary
    except (ValueError, RecursionError) as e:  # RecursionError: JSON nested thousands deep
        raise ApiError(400, f"the inference request is not valid JSON: {str(e)[:200]}") from None
