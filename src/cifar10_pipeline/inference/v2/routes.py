"""The v2 routes: server and model metadata, health, and inference (see the package's docstring), each a thin HTTP
transport around ``service``."""

from __future__ import annotations

import json

from flask import Blueprint, Response, jsonify, request

from cifar10_pipeline.inference.errors import ApiError
from cifar10_pipeline.inference.holder import current_holder
from cifar10_pipeline.inference.runtime import LoadedModel
from cifar10_pipeline.inference.v2 import service
from cifar10_pipeline.inference.v2.body import HEADER_LENGTH, read_request

blueprint = Blueprint("v2", __name__, url_prefix="/v2")


def _model(name: str, version: str | None) -> LoadedModel:
    """The model served under ``name`` (and ``version``, when given); read once per request."""
    return service.served_model(current_holder(), name, version)


def _empty(status: int = 200) -> Response:
    return Response(b"", status)


@blueprint.get("")
def server_metadata():
    return jsonify(service.server_metadata().model_dump())


@blueprint.get("/health/live")
def live():
    return _empty()


@blueprint.get("/health/ready")
def ready():
    holder = current_holder()
    if holder.model is None:
        raise ApiError(503, f"no model is ready: {holder.load_error}")
    return _empty()


@blueprint.get("/models/<name>", defaults={"version": None})
@blueprint.get("/models/<name>/versions/<version>")
def model_metadata(name: str, version: str | None):
    return jsonify(service.model_metadata(name, _model(name, version)).model_dump())


@blueprint.get("/models/<name>/ready", defaults={"version": None})
@blueprint.get("/models/<name>/versions/<version>/ready")
def model_ready(name: str, version: str | None):
    _model(name, version)
    return _empty()


@blueprint.post("/models/<name>/infer", defaults={"version": None})
@blueprint.post("/models/<name>/versions/<version>/infer")
def infer(name: str, version: str | None):
    holder = current_holder()
    model = _model(name, version)  # read once: a swap during this request does not affect it
    header, binary = read_request(request, holder.config.max_upload_bytes)
    response, chunks = service.infer(holder, name, model, header, binary, HEADER_LENGTH in request.headers)
    body = response.model_dump(exclude_none=True)
    if not chunks:
        return jsonify(body)
    json_part = json.dumps(body, separators=(",", ":")).encode()
    return Response(json_part + b"".join(chunks), 200, {HEADER_LENGTH: str(len(json_part))},
                    mimetype="application/octet-stream")
