"""What the upload page's browser mode loads: the model file being served (``GET /model.onnx``) and the browser side's
JavaScript with onnxruntime-web's wasm build (``GET /web/<file>``, from ``cifar10_pipeline.web``), all from this
service, so the page works without any other server and offline."""

from __future__ import annotations

from flask import Blueprint, Response, request, send_file

from cifar10_pipeline import web
from cifar10_pipeline.inference.errors import ApiError
from cifar10_pipeline.inference.holder import current_model

MODEL_MEDIA_TYPE = "application/octet-stream"  # ONNX has no registered media type
WEB_FILES = web.served_files()  # the only files /web/ serves

blueprint = Blueprint("browser", __name__)


@blueprint.get("/model.onnx")
def model_file():
    """The bytes of the model answering now (the hot-swap holder's, not whatever the file on disk holds), with its
    id as a strong ETag: a client holding that id gets 304 to If-None-Match, and a swap changes it."""
    model = current_model()
    if request.if_none_match.contains_weak(model.model_id):  # RFC 9110: If-None-Match compares weakly
        response = Response(status=304)
    else:
        response = Response(model.data, mimetype=MODEL_MEDIA_TYPE)
        response.headers["Content-Disposition"] = 'attachment; filename="model.onnx"'
    response.set_etag(model.model_id)
    response.headers["Cache-Control"] = "no-cache"  # may be cached, but asked again each time: a swap changes it
    return response


@blueprint.get("/web/<path:name>")
def web_file(name: str):
    path = WEB_FILES.get(name)
    if path is None:
        raise ApiError(404, f"no file {name!r} here: /web/ serves {', '.join(sorted(WEB_FILES))}")
    if not path.is_file():  # onnxruntime-web's files, when `make web` did not run before the install
        raise ApiError(404, web.missing_message())
    response = send_file(path, mimetype=web.media_type(path), etag=True, max_age=0)
    encoding = web.content_encoding(path)
    if encoding:  # every browser accepts gzip, and a request without Accept-Encoding accepts any (RFC 9110)
        response.headers["Content-Encoding"] = encoding
    return response
