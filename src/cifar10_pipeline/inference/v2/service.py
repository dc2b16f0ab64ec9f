"""The protocol's answers, whatever carries them: which model a name and version mean, the server's and the model's
metadata, and an inference from a request's JSON header and binary bytes. The HTTP routes (``routes``) and the gRPC
service (``grpc_service``) are each a thin transport around these, so both validate and answer alike."""

from __future__ import annotations

from typing import Any

from cifar10_pipeline.contract import DISTRIBUTION, INPUT_NAME, OUTPUT_NAME, project_version
from cifar10_pipeline.inference.errors import ApiError
from cifar10_pipeline.inference.holder import ModelHolder
from cifar10_pipeline.inference.runtime import LoadedModel
from cifar10_pipeline.inference.v2.codec import read_input, write_output
from cifar10_pipeline.inference.v2.answers import (OUTPUT_DATATYPE, InferenceResponse, ModelMetadata, ServerMetadata,
                                                   TensorMetadata)
from cifar10_pipeline.inference.v2.request import INPUT_DATATYPE, Limits, parse_request

EXTENSIONS = ["binary_tensor_data", "classification"]
PLATFORM = "onnx_onnxv1"


def served_model(holder: ModelHolder, name: str, version: str | None) -> LoadedModel:
    """The model served under ``name`` (and ``version``, when given), read once: a swap during the request does not
    change it. 404 for another name or version, 503 while no model is loaded."""
    if name != holder.config.model_name:
        raise ApiError(404, f"unknown model {name!r}; this server serves {holder.config.model_name!r}")
    model = holder.model
    if model is None:
        raise ApiError(503, f"model {name!r} is not ready: {holder.load_error}")
    if version is not None and version != model.model_id:
        raise ApiError(404, f"model {name!r} has no version {version!r}; the version served is {model.model_id}")
    return model


def server_metadata() -> ServerMetadata:
    return ServerMetadata(name=DISTRIBUTION, version=project_version(), extensions=EXTENSIONS)


def model_metadata(name: str, model: LoadedModel) -> ModelMetadata:
    info = model.info
    return ModelMetadata(
        name=name,
        versions=[model.model_id],
        platform=PLATFORM,
        inputs=[TensorMetadata(name=INPUT_NAME, datatype=INPUT_DATATYPE, shape=[-1, *info.input_shape])],
        outputs=[TensorMetadata(name=OUTPUT_NAME, datatype=OUTPUT_DATATYPE, shape=[-1, info.num_classes])],
    )


def infer(holder: ModelHolder, name: str, model: LoadedModel, header: Any, binary: bytes, header_length_given: bool,
          all_binary: bool = False) -> tuple[InferenceResponse, list[bytes]]:
    """Run the inference request ``header`` (its JSON, not yet validated; its tensor bytes in ``binary``) on
    ``model``: (the response, the raw bytes of its binary outputs in order). Outputs are binary as the request asks,
    or all of them with ``all_binary`` (gRPC, where every output travels as raw bytes). An ApiError for a refusal."""
    limits = Limits(model.info.input_shape, model.info.num_classes, holder.config.max_files)
    inference = parse_request(header, limits)
    images = read_input(inference.inputs[0], binary, header_length_given)
    binary_default = inference.parameters.binary_data_output
    outputs = [(o.name, binary_default if o.parameters.binary_data is None else o.parameters.binary_data,
                o.parameters.classification) for o in inference.outputs or []] or [(OUTPUT_NAME, binary_default, None)]

    logits = holder.infer(model, list(images))
    tensors, chunks = [], []
    for output_name, binary_out, top_k in outputs:
        tensor, raw = write_output(output_name, logits, model.info.labels, top_k, binary_out or all_binary)
        tensors.append(tensor)
        if raw is not None:
            chunks.append(raw)
    return InferenceResponse(model_name=name, model_version=model.model_id, outputs=tensors, id=inference.id), chunks
