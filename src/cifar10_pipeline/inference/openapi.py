"""The service's OpenAPI 3.1 document, served at ``/openapi.json``: every endpoint, its request and response
schemas and every error status.

Built per request from the model being served, so the numbers a client may send (``top_k`` up to the number of
classes, the image's height, width and channels) are the ones the service will accept now.
"""

from __future__ import annotations

import functools
from typing import Any

from pydantic.json_schema import models_json_schema

from cifar10_pipeline.contract import project_version
from cifar10_pipeline.inference.config import ServiceConfig
from cifar10_pipeline.inference.runtime import LoadedModel
from cifar10_pipeline.inference.v2.answers import InferenceResponse, ModelMetadata, ServerMetadata
from cifar10_pipeline.inference.v2.request import InferenceRequest


def _component(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


JSON_ERROR = {"application/json": {"schema": _component("Error")}}


@functools.cache
def v2_schemas() -> dict[str, Any]:
    """The JSON schemas of the v2 JSON bodies (``inference.v2``'s pydantic models), by model name, referring to each
    other as OpenAPI components."""
    _, top = models_json_schema(
        [(InferenceRequest, "validation"), (InferenceResponse, "serialization"), (ServerMetadata, "serialization"),
         (ModelMetadata, "serialization")],
        ref_template="#/components/schemas/{model}",
    )
    return top["$defs"]


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": JSON_ERROR}


def _json(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _timed_out(config: ServiceConfig) -> dict[str, Any]:
    """The 503 of an endpoint that runs the model."""
    return _error(f"no model is loaded (it is missing or was refused; /readyz says why), or inference took longer "
                  f"than {config.infer_timeout_s:g} s (INFERENCE_INFER_TIMEOUT_S)")


def _v2_paths(config: ServiceConfig, model: LoadedModel | None, unavailable: dict[str, Any]) -> dict[str, Any]:
    """The Open Inference Protocol's endpoints (inference.v2), each model path also under /versions/{version}; their
    JSON bodies' schemas are the pydantic models' (``v2_schemas``)."""
    name = {"name": "name", "in": "path", "required": True, "schema": {"const": config.model_name},
            "description": "the model's name (another one is 404)"}
    version = {"name": "version", "in": "path", "required": True,
               "schema": {"const": model.model_id} if model else {"type": "string"},
               "description": "the served file's id, sha256 (a swapped-out one is 404)"}
    unknown = _error("no model of that name, or not that version")
    infer = {"post": {
        "summary": "Run the model on uint8 image tensors (JSON, or the binary tensor data extension)",
        "requestBody": {"required": True, "content": {
            "application/json": {"schema": _component("InferenceRequest")},
            # a media type object has no description (OpenAPI 3.1): the schema carries it
            "application/octet-stream": {"schema": {"type": "string", "contentMediaType": "application/octet-stream",
                                                    "description": "JSON header of Inference-Header-Content-Length "
                                                                   "bytes, then the raw tensors"}}}},
        "responses": {"200": {"description": "the outputs, in kind", "content": {
            "application/json": {"schema": _component("InferenceResponse")},
            "application/octet-stream": {"schema": {"type": "string"}}}},
            "400": _error("a malformed request: names, datatype, shape, byte counts, JSON, header length"),
            "404": unknown, "413": _error(f"more than {config.max_files} images or {config.max_upload_bytes} bytes"),
            "415": _error("a Content-Encoding other than identity, gzip or deflate"),
            "503": _timed_out(config)}}}
    metadata = {"get": {"summary": "The model's metadata", "responses": {
        "200": _json("name, versions, platform, inputs, outputs", _component("ModelMetadata")), "404": unknown,
        "503": unavailable}}}
    ready = {"get": {"summary": "Whether the model is ready", "responses": {
        "200": {"description": "ready"}, "404": unknown, "503": unavailable}}}
    paths = {"/v2": {"get": {"summary": "Server metadata", "responses": {"200": _json(
                 "name, version, extensions", _component("ServerMetadata"))}}},
             "/v2/health/live": {"get": {"summary": "The server is alive", "responses": {"200": {"description": "live"}}}},
             "/v2/health/ready": {"get": {"summary": "The server is ready", "responses": {
                 "200": {"description": "ready"}, "503": unavailable}}}}
    for prefix, parameters in (("/v2/models/{name}", [name]), ("/v2/models/{name}/versions/{version}", [name, version])):
        for suffix, operation in (("", metadata), ("/ready", ready), ("/infer", infer)):
            paths[prefix + suffix] = {method: {**spec, "parameters": parameters} for method, spec in operation.items()}
    return paths


def document(config: ServiceConfig, model: LoadedModel | None) -> dict[str, Any]:
    classes = model.info.num_classes if model else 1000
    unavailable = _error("no model is loaded (it is missing or was refused); /readyz says why")
    etag = {"description": "the model's id (sha256 of the file), quoted: a strong ETag", "required": True,
            "schema": {"type": "string"}}
    label_p = {"type": "object", "required": ["label", "probability"],
               "properties": {"label": {"type": "string"}, "probability": {"type": "number", "minimum": 0, "maximum": 1}}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "cifar10-pipeline image classifier", "version": project_version(),
                 "description": "Upload a photo, learn what is in it. onnxruntime serves one ONNX model; errors are "
                                "JSON objects with an `error` message."},
        "paths": {
            "/predict": {"post": {
                "summary": "Classify one or more images",
                "parameters": [{"name": "top_k", "in": "query", "required": False,
                                "description": "best labels listed per image (default: 3)",
                                "schema": {"type": "integer", "minimum": 1, "maximum": classes}}],
                "requestBody": {"required": True, "content": {
                    "multipart/form-data": {"schema": {
                        "type": "object", "minProperties": 1, "maxProperties": config.max_files,
                        "description": "each image as a file field, under any field name",
                        "additionalProperties": {"type": "string", "contentMediaType": "application/octet-stream"}}},
                    "image/*": {"schema": {"type": "string", "contentMediaType": "image/*"}},
                }},
                "responses": {
                    "200": _json("one prediction per image, in upload order", _component("Predictions")),
                    "400": _error("an empty, truncated or corrupt image, a form without a file, or a bad top_k"),
                    "413": _error(f"a body over {config.max_upload_bytes} bytes, more than {config.max_files} files, "
                                  f"or an image over {config.max_pixels} pixels (decompression bombs)"),
                    "415": _error("a body that is neither multipart/form-data nor image/*, or a file that is not a "
                                  "PNG, JPEG, GIF, BMP or WebP image"),
                    "503": _timed_out(config),
                },
            }},
            "/healthz": {"get": {"summary": "The process is alive", "responses": {
                "200": _json("alive", {"type": "object", "required": ["status"],
                                       "properties": {"status": {"const": "alive"}}})}}},
            "/readyz": {"get": {"summary": "A model is loaded and passed its golden self-test", "responses": {
                "200": _json("ready", {"type": "object", "required": ["ready", "model_id"],
                                       "properties": {"ready": {"const": True}, "model_id": {"type": "string"}}}),
                "503": _json("not ready, and why", {"type": "object", "required": ["ready", "error"],
                                                    "properties": {"ready": {"const": False},
                                                                   "error": {"type": ["string", "null"]}}})}}},
            "/info": {"get": {"summary": "The model being served: metadata, parity report, self-test, providers",
                              "responses": {"200": _json("the model and the service's settings",
                                                         _component("Info")),
                                            "503": unavailable}}},
            "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {"200": {
                "description": "the Prometheus text format, or OpenMetrics when the Accept header asks for it",
                "content": {"text/plain": {"schema": {"type": "string"}},
                            "application/openmetrics-text": {"schema": {"type": "string"}}}}}}},
            "/openapi.json": {"get": {"summary": "This document", "responses": {"200": _json(
                "the OpenAPI document", {"type": "object"})}}},
            "/model.onnx": {"get": {
                "summary": "The ONNX file being served (the one answering now), e.g. to run it in a browser",
                "parameters": [{"name": "If-None-Match", "in": "header", "required": False,
                                "description": "an ETag from an earlier answer: 304 while that model is still served",
                                "schema": {"type": "string"}}],
                "responses": {
                    "200": {"description": "the file's bytes", "headers": {"ETag": etag},
                            "content": {"application/octet-stream": {"schema": {
                                "type": "string", "contentMediaType": "application/octet-stream"}}}},
                    "304": {"description": "If-None-Match names the model still served", "headers": {"ETag": etag}},
                    "503": unavailable}}},
            **_v2_paths(config, model, unavailable),
        },
        "components": {"schemas": {
            **v2_schemas(),
            "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}},
            "Predictions": {"type": "object", "required": ["model_id", "predictions"], "properties": {
                "model_id": {"type": "string", "description": "sha256 of the model file"},
                "predictions": {"type": "array", "items": {"allOf": [label_p, {
                    "type": "object", "required": ["file", "top_k", "model_id"],
                    "properties": {"file": {"type": "string"}, "model_id": {"type": "string"},
                                   "top_k": {"type": "array", "items": label_p, "minItems": 1}}}]}},
            }},
            "Info": {"type": "object", "required": ["model_id", "labels", "input", "metadata", "providers"],
                     "properties": {
                         "model_id": {"type": "string"}, "model_path": {"type": "string"},
                         "loaded_at": {"type": "string"}, "labels": {"type": "array", "items": {"type": "string"}},
                         "input": {"type": "object", "properties": {k: {"type": "integer"}
                                                                    for k in ("height", "width", "channels")}},
                         "metadata": {"type": "object"}, "self_test": {"type": "object"},
                         "quantized": {"type": "boolean",
                                       "description": "an INT8 file: metadata.quantization says how it was made"},
                         "providers": {"type": "object", "required": ["requested", "active", "not_started",
                                                                      "available"], "properties": {
                             **{k: {"type": "array", "items": {"type": "string"}}
                                for k in ("requested", "active", "available")},
                             "not_started": {"type": "object", "additionalProperties": {"type": "string"},
                                             "description": "each requested provider the session runs without, "
                                                            "and why (CUDA in the GPU image without a GPU)"}}},
                         "last_refused": {"type": ["string", "null"]},
                         "config": {"type": "object"}, "pid": {"type": "integer"}, "versions": {"type": "object"},
                         "imported_frameworks": {"type": "array", "items": {"type": "string"}}}},
        }},
    }
