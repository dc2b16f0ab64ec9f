"""Every error the service answers, in one place: ``ApiError`` carries the HTTP status of a refused request, and
``register_error_handlers`` makes each error, refused or unexpected, a JSON ``{"error": message}``."""

from __future__ import annotations

from flask import Flask, Response, current_app, jsonify, request
from werkzeug.exceptions import HTTPException


class ApiError(Exception):
    """A refused request; the app's error handler answers ``status`` with ``{"error": message}``."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def register_error_handlers(app: Flask) -> None:
    """Answer ApiError, Werkzeug's HTTP errors (404, 405, 413...) and anything unexpected (500) with JSON."""
    app.register_error_handler(ApiError, _api_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _internal_error)


def _api_error(e: ApiError) -> tuple[Response, int]:
    return jsonify(error=e.message), e.status


def _http_error(e: HTTPException) -> tuple[Response, int]:
    max_bytes = current_app.config["MAX_CONTENT_LENGTH"]
    length = request.content_length  # None for a chunked body
    if e.code == 413 and length is not None and length <= max_bytes:
        # not the body's size but the multipart parser's own limits (Flask >= 3.1 sets both)
        return jsonify(
            error=f"the multipart form has more than {current_app.config['MAX_FORM_PARTS']} parts or a non-file "
            f"field over {current_app.config['MAX_FORM_MEMORY_SIZE']} bytes; send each image as a file field"
        ), 413
    if e.code == 413:
        size = f"{length} bytes" if length is not None else "larger"
        return jsonify(error=f"request body is {size}, at most {max_bytes} bytes accepted"), 413
    response = jsonify(error=f"{e.name}: {e.description}")
    # the exception's own headers, e.g. the Allow list a 405 must carry (RFC 9110)
    response.headers.extend((k, v) for k, v in e.get_headers() if k.lower() != "content-type")
    return response, e.code


def _internal_error(e: Exception) -> tuple[Response, int]:
    current_app.logger.exception("unhandled error on %s %s", request.method, request.path)
    return jsonify(error=f"internal error: {type(e).__name__}"), 500
