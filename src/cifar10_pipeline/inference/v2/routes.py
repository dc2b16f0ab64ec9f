"""The v2 routes: server and model metadata, health, and inference (see the package's docstring)."""

from __future__ import annotations

import json

from flask import Blueprint, Response, jsonify, request

from cifar10_pipeline.contract import DISTRIBUTION, INPUT_NAME, OUTPUT_NAME, project_version
from cifar10_pipeline.inference.errors import ApiError
from cifar10_pipeline.inference.holder import current_holder
from cifar10_pipeline.inference.runtime import LoadedModel
from cifar10_pipeline.inference.v2.body import HEADER_LENGTH, read_request
from cifar10_pipeline.inference.v2.codec import read_input, write_output
from cifar10_pipeline.inference.v2.models import (INPUT_DATATYPE, OUTPUT_DATATYPE, InferenceResponse, Limits,
                                                  ModelMetadata, ServerMetadata, TensorMetadata, parse_request)

EXTENSIONS = ["binary_tensor_data", "classification"]
PLATFORM = "onnx_onnxv1"

blueprint = Blueprint("v2", __name__, url_prefix="/v2")


def _model(name: str, version: str | None) -> LoadedModel:
    """The model served under ``name`` (and ``version``, when given); read once per request."""
    holder = current_holder()
    if name != holder.config.model_name:
        raise ApiError(404, f"unknown model {name!r}; this server serves {holder.config.model_name!r}")
    model = holder.model
    if model is None:
        raise ApiError(503, f"model {name!r} is not ready: {holder.load_error}")
    if version is not None and version != model.model_id:
        raise ApiError(404, f"model {name!r} has no version {version!r}; the version served is {model.model_id}")
    return model


def _empty(status: int = 200) -> Response:
    return Response(b"", status)


# ---------------------------------------------------------------- server and model metadata, health


@blueprint.get("")
def server_metadata():
    return jsonify(ServerMetadata(name=DISTRIBUTION, version=project_version(), extensions=EXTENSIONS).model_dump())


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
    model = _model(name, version)
    info = model.info
    return jsonify(ModelMetadata(
        name=name,
        versions=[model.model_id],
        platform=PLATFORM,
        inputs=[TensorMetadata(name=INPUT_NAME, datatype=INPUT_DATATYPE, shape=[-1, *info.input_shape])],
        outputs=[TensorMetadata(name=OUTPUT_NAME, datatype=OUTPUT_DATATYPE, shape=[-1, info.num_classes])],
    ).model_dump())


@blueprint.get("/models/<name>/ready", defaults={"version": None})
@blueprint.get("/models/<name>/versions/<version>/ready")
def model_ready(name: str, version: str | None):
    _model(name, version)
    return _empty()


# ---------------------------------------------------------------- inference


@blueprint.post("/models/<name>/infer", defaults={"version": None})
@blueprint.post("/models/<name>/versions/<version>/infer")
def infer(name: str, version: str | None):
    holder = current_holder()
    model = _model(name, version)  # read once: a swap during this request does not affect it
    header, binary = read_request(request, holder.config.max_upload_bytes)
    limits = Limits(model.info.input_shape, model.info.num_classes, holder.config.max_files)
    inference = parse_request(header, limits)
    images = read_input(inference.inputs[0], binary, HEADER_LENGTH in request.headers)
    binary_default = inference.parameters.binary_data_output
    requested = inference.outputs or []
    outputs = [(o.name, binary_default if o.parameters.binary_data is None else o.parameters.binary_data,
                o.parameters.classification) for o in requested] or [(OUTPUT_NAME, binary_default, None)]

    logits = holder.infer(model, list(images))
    tensors, chunks = [], []
    for output_name, binary_out, top_k in outputs:
        tensor, raw = write_output(output_name, logits, model.info.labels, top_k, binary_out)
        tensors.append(tensor)
        if raw is not None:
            chunks.append(raw)
    body = InferenceResponse(model_name=name, model_version=model.model_id, outputs=tensors,
                             id=inference.id).model_dump(exclude_none=True)
    if not chunks:
        return jsonify(body)
    json_part = json.dumps(body, separators=(",", ":")).encode()
    return Response(json_part + b"".join(chunks), 200, {HEADER_LENGTH: str(len(json_part))},
                    mimetype="application/octet-stream")
