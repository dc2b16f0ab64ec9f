"""The Open Inference Protocol (KServe v2, Triton's HTTP/REST API) under /v2, beside /predict.

One model, named ``config.model_name`` ("classifier"), whose one version is the served file's id (sha256):
a hot swap is a new version, and a request naming the old one gets 404. Its input is ``image`` UINT8
``[-1, H, W, C]`` (raw pixels, no decoding), its output ``logits`` FP32 ``[-1, num_classes]``.

Extensions: ``binary_tensor_data`` (``Inference-Header-Content-Length``: a JSON header followed by raw
little-endian tensors, ``binary_data_size`` on inputs, ``binary_data`` / ``binary_data_output`` asking for
binary outputs) and ``classification`` (``parameters.classification: k`` on the output: the top k of each
row as BYTES ``"score:index:label"``, the score being the logit, as Triton writes it). Request bodies may be
gzip or deflate (``Content-Encoding``), as tritonclient can send them.

Every refusal is an ApiError, answered ``{"error": "..."}``: 400 for a malformed request, 404 for an unknown
model or version, 413 over the size limits, 415 for an unknown content encoding, 503 while no model is ready.
"""

from __future__ import annotations

import json
import math
import struct
import zlib
from typing import Any

import numpy as np
from flask import Blueprint, Response, current_app, jsonify, request

from cifar10_pipeline.contract import DISTRIBUTION, INPUT_NAME, OUTPUT_NAME, project_version
from cifar10_pipeline.inference.bodies import read_body
from cifar10_pipeline.inference.errors import ApiError
from cifar10_pipeline.inference.model import LoadedModel
from cifar10_pipeline.inference.service import Service

HEADER_LENGTH = "Inference-Header-Content-Length"
EXTENSIONS = ["binary_tensor_data", "classification"]
PLATFORM = "onnx_onnxv1"
INPUT_DATATYPE = "UINT8"
OUTPUT_DATATYPE = "FP32"

blueprint = Blueprint("v2", __name__, url_prefix="/v2")


def _service() -> Service:
    return current_app.extensions["inference"]


def _model(name: str, version: str | None) -> LoadedModel:
    """The model served under ``name`` (and ``version``, when given); read once per request."""
    service = _service()
    if name != service.config.model_name:
        raise ApiError(404, f"unknown model {name!r}; this server serves {service.config.model_name!r}")
    model = service.model
    if model is None:
        raise ApiError(503, f"model {name!r} is not ready: {service.load_error}")
    if version is not None and version != model.model_id:
        raise ApiError(404, f"model {name!r} has no version {version!r}; the version served is {model.model_id}")
    return model


def _empty(status: int = 200) -> Response:
    return Response(b"", status)


# ---------------------------------------------------------------- server and model metadata, health


@blueprint.get("")
def server_metadata():
    return jsonify(name=DISTRIBUTION, version=project_version(), extensions=EXTENSIONS)


@blueprint.get("/health/live")
def live():
    return _empty()


@blueprint.get("/health/ready")
def ready():
    service = _service()
    if service.model is None:
        raise ApiError(503, f"no model is ready: {service.load_error}")
    return _empty()


@blueprint.get("/models/<name>", defaults={"version": None})
@blueprint.get("/models/<name>/versions/<version>")
def model_metadata(name: str, version: str | None):
    model = _model(name, version)
    info = model.info
    return jsonify(
        name=name,
        versions=[model.model_id],
        platform=PLATFORM,
        inputs=[{"name": INPUT_NAME, "datatype": INPUT_DATATYPE, "shape": [-1, *info.input_shape]}],
        outputs=[{"name": OUTPUT_NAME, "datatype": OUTPUT_DATATYPE, "shape": [-1, info.num_classes]}],
    )


@blueprint.get("/models/<name>/ready", defaults={"version": None})
@blueprint.get("/models/<name>/versions/<version>/ready")
def model_ready(name: str, version: str | None):
    _model(name, version)
    return _empty()


# ---------------------------------------------------------------- inference


@blueprint.post("/models/<name>/infer", defaults={"version": None})
@blueprint.post("/models/<name>/versions/<version>/infer")
def infer(name: str, version: str | None):
    service = _service()
    model = _model(name, version)  # read once: a swap during this request does not affect it
    header, binary = _split_body(_read_body(service.config.max_upload_bytes))
    request_id = header.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise ApiError(400, f"'id' must be a string, got {request_id!r:.80}")
    binary_default = _flag(_parameters(header, "the request"), "binary_data_output", False, "the request")
    images = _read_inputs(header.get("inputs"), binary, model, service.config.max_files)
    outputs = _requested_outputs(header.get("outputs"), binary_default, model.info.num_classes)

    logits = service.infer(model, list(images))
    body: dict[str, Any] = {"model_name": name, "model_version": model.model_id, "outputs": []}
    if request_id is not None:
        body["id"] = request_id
    chunks = []
    for output_name, binary_out, top_k in outputs:
        tensor, raw = _output(output_name, logits, model.info.labels, top_k, binary_out)
        body["outputs"].append(tensor)
        if raw is not None:
            chunks.append(raw)
    if not chunks:
        return jsonify(body)
    json_part = json.dumps(body, separators=(",", ":")).encode()
    return Response(json_part + b"".join(chunks), 200, {HEADER_LENGTH: str(len(json_part))},
                    mimetype="application/octet-stream")


def _output(name: str, logits: np.ndarray, labels: tuple[str, ...], top_k: int | None,
            binary: bool) -> tuple[dict[str, Any], bytes | None]:
    """One response output: the logits (FP32), or their classification (BYTES) when ``top_k`` is given; with
    ``binary``, its raw little-endian bytes to follow the JSON header, else its values inline."""
    if top_k is None:
        tensor = {"name": name, "datatype": OUTPUT_DATATYPE, "shape": list(logits.shape)}
        values = np.ascontiguousarray(logits, dtype="<f4")
        if not binary:
            return {**tensor, "data": values.ravel().tolist()}, None
        raw = values.tobytes()
    else:
        strings = _classify(logits, labels, top_k)
        tensor = {"name": name, "datatype": "BYTES", "shape": [len(logits), top_k]}
        if not binary:
            return {**tensor, "data": strings}, None
        encoded = [s.encode() for s in strings]
        raw = b"".join(struct.pack("<I", len(e)) + e for e in encoded)  # Triton's BYTES: uint32 length, bytes
    return {**tensor, "parameters": {"binary_data_size": len(raw)}}, raw


def _read_body(max_bytes: int) -> bytes:
    """The request body, inflated when gzip or deflate; 413 past ``max_bytes`` either way."""
    body = read_body(request, max_bytes)
    encoding = request.headers.get("Content-Encoding", "").strip().lower() or "identity"
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


def _split_body(body: bytes) -> tuple[dict[str, Any], bytes]:
    """(JSON header, binary data after it): ``Inference-Header-Content-Length`` bytes of JSON, or all of it."""
    raw = request.headers.get(HEADER_LENGTH)
    if raw is None:
        json_part, binary = body, b""
    else:
        raw = raw.strip()
        if not (raw.isascii() and raw.isdigit()) or int(raw) > len(body):
            raise ApiError(400, f"{HEADER_LENGTH} must be a byte count from 0 to the body's {len(body)} bytes, "
                                f"got {raw!r:.40}")
        json_part, binary = body[: int(raw)], body[int(raw):]
    try:
        header = json.loads(json_part)
    except (ValueError, RecursionError) as e:  # RecursionError: JSON nested thousands deep
        raise ApiError(400, f"the inference request is not valid JSON: {str(e)[:200]}") from None
    if not isinstance(header, dict):
        raise ApiError(400, f"the inference request must be a JSON object, got {type(header).__name__}")
    return header, binary


def _parameters(obj: dict[str, Any], where: str) -> dict[str, Any]:
    parameters = obj.get("parameters", {})
    if not isinstance(parameters, dict):
        raise ApiError(400, f"'parameters' of {where} must be a JSON object, got {parameters!r:.80}")
    return parameters


def _flag(parameters: dict[str, Any], key: str, default: bool, where: str) -> bool:
    value = parameters.get(key, default)
    if not isinstance(value, bool):
        raise ApiError(400, f"parameter {key!r} of {where} must be true or false, got {value!r:.80}")
    return value


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _read_inputs(inputs: Any, binary: bytes, model: LoadedModel, max_files: int) -> np.ndarray:
    """The one input, ``image``, as uint8 [N, H, W, C], from JSON ``data`` or the binary part of the body."""
    if not isinstance(inputs, list) or not inputs:
        raise ApiError(400, f"'inputs' must be a list holding one tensor, {INPUT_NAME!r}")
    if not all(isinstance(t, dict) for t in inputs):
        raise ApiError(400, "each input must be a JSON object with 'name', 'datatype', 'shape' and 'data'")
    unknown = [t.get("name") for t in inputs if t.get("name") != INPUT_NAME]
    if unknown:
        raise ApiError(400, f"unknown input {unknown[0]!r:.80}; the model's only input is {INPUT_NAME!r}")
    if len(inputs) > 1:
        raise ApiError(400, f"input {INPUT_NAME!r} is given {len(inputs)} times")
    tensor = inputs[0]
    height, width, channels = model.info.input_shape
    expected = [height, width, channels]
    datatype, shape = tensor.get("datatype"), tensor.get("shape")
    if datatype != INPUT_DATATYPE:
        raise ApiError(400, f"input {INPUT_NAME!r} must be {INPUT_DATATYPE}, got datatype {datatype!r:.80}")
    if not (isinstance(shape, list) and len(shape) == 4 and all(_is_int(d) for d in shape)) or shape[1:] != expected:
        raise ApiError(400, f"input {INPUT_NAME!r} must have shape [N, {height}, {width}, {channels}], "
                            f"got {shape!r:.80}")
    if shape[0] < 1:
        raise ApiError(400, f"input {INPUT_NAME!r} holds {shape[0]} images, at least 1 is needed")
    if shape[0] > max_files:
        raise ApiError(413, f"{shape[0]} images in one request, at most {max_files} accepted")
    count = math.prod(shape)
    size = _parameters(tensor, f"input {INPUT_NAME!r}").get("binary_data_size")

    if size is None:
        if binary:
            raise ApiError(400, f"{len(binary)} bytes follow the JSON header, but no input has 'binary_data_size'")
        if "data" not in tensor:
            raise ApiError(400, f"input {INPUT_NAME!r} has neither 'data' nor parameters.binary_data_size")
        return _json_data(tensor["data"], shape, count)
    if "data" in tensor:
        raise ApiError(400, f"input {INPUT_NAME!r} has both 'data' and parameters.binary_data_size")
    if not _is_int(size) or size != count:
        raise ApiError(400, f"input {INPUT_NAME!r} has binary_data_size {size!r:.40}, but {INPUT_DATATYPE} "
                            f"{shape} is {count} bytes")
    if len(binary) != size:
        hint = "" if HEADER_LENGTH in request.headers else f" (no {HEADER_LENGTH} header: the whole body is JSON)"
        raise ApiError(400, f"input {INPUT_NAME!r} has binary_data_size {size}, but {len(binary)} bytes follow the "
                            f"JSON header{hint}")
    return np.frombuffer(binary, np.uint8).reshape(shape)


def _json_data(data: Any, shape: list[int], count: int) -> np.ndarray:
    """JSON tensor data, flat (row-major) or nested to ``shape``, as uint8 of ``shape``; 400 if anything is off."""
    nested = tuple(shape)
    if not isinstance(data, list) or len(data) not in (count, shape[0]):  # cheap, before numpy walks it
        raise ApiError(400, f"input {INPUT_NAME!r} data must be a list of {count} values, flat or nested as {shape}")
    try:
        values = np.array(data)
    except (ValueError, TypeError, RecursionError, OverflowError):  # ragged nesting and the like
        values = None
    if values is None or values.shape not in (nested, (count,)):
        got = "ragged lists" if values is None else f"shape {list(values.shape)}"
        raise ApiError(400, f"input {INPUT_NAME!r} data has {got}; send {count} values, flat or nested as {shape}")
    # numpy reads a JSON true among integers as 1, so booleans are looked for one by one
    if (values.dtype.kind not in "iu" or (values.size and (values.min() < 0 or values.max() > 255))
            or any(isinstance(v, bool) for v in np.asarray(data, dtype=object).flat)):
        raise ApiError(400, f"input {INPUT_NAME!r} data must hold integers from 0 to 255 ({INPUT_DATATYPE})")
    return values.astype(np.uint8).reshape(shape)


def _requested_outputs(outputs: Any, binary_default: bool, num_classes: int) -> list[tuple[str, bool, int | None]]:
    """(name, binary or not, classification top k or None) per requested output; all of them when none is."""
    if outputs is None or outputs == []:
        return [(OUTPUT_NAME, binary_default, None)]
    if not isinstance(outputs, list):
        raise ApiError(400, f"'outputs' must be a list, got {type(outputs).__name__}")
    requested, seen = [], set()
    for output in outputs:
        if not isinstance(output, dict):
            raise ApiError(400, f"each requested output must be a JSON object with a 'name', got {output!r:.80}")
        name = output.get("name")
        if name != OUTPUT_NAME:
            raise ApiError(400, f"unknown output {name!r:.80}; the model's only output is {OUTPUT_NAME!r}")
        if name in seen:
            raise ApiError(400, f"output {name!r} is requested twice")
        seen.add(name)
        where = f"output {name!r}"
        parameters = _parameters(output, where)
        top_k = parameters.get("classification")
        if top_k is not None and not (_is_int(top_k) and 1 <= top_k <= num_classes):
            raise ApiError(400, f"parameter 'classification' of {where} must be an integer from 1 to "
                                f"{num_classes}, got {top_k!r:.40}")
        requested.append((name, _flag(parameters, "binary_data", binary_default, where), top_k))
    return requested


def _classify(logits: np.ndarray, labels: tuple[str, ...], top_k: int) -> list[str]:
    """Triton's classification strings ``"score:index:label"``, the ``top_k`` best of each row, row-major;
    ties keep the label order."""
    best = np.argsort(-logits, axis=1, kind="stable")[:, :top_k]
    return [f"{row[i]}:{i}:{labels[i]}" for row, indices in zip(logits, best) for i in indices]
