"""Stamp the contract's metadata into an ONNX model, read it back, check the model, and write it atomically."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import onnx

from cifar10_pipeline.files import write_bytes, write_json
from cifar10_pipeline.contract import (MIN_OPSET, ContractError, ModelInfo, TensorSpec, check_signature, decode_metadata,
                                       encode_metadata, project_version)


def stamp_metadata(model: onnx.ModelProto, values: dict[str, Any]) -> onnx.ModelProto:
    """Replace the model's metadata_props with the contract's keys (``created`` and ``project_version`` filled in)."""
    values = {"created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "project_version": project_version(), **values}
    del model.metadata_props[:]
    for key, value in encode_metadata(values).items():
        model.metadata_props.add(key=key, value=value)
    return model


def _raw_metadata(model: onnx.ModelProto) -> dict[str, str]:
    return {p.key: p.value for p in model.metadata_props}


def read_metadata(model: onnx.ModelProto) -> dict[str, Any]:
    """The contract's metadata stamped into ``model``, decoded; checking it is ``check_model``'s job."""
    return decode_metadata(_raw_metadata(model))[0]


def _spec(value: onnx.ValueInfoProto) -> TensorSpec:
    tensor = value.type.tensor_type
    dtype = onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type).name if tensor.elem_type else None
    dims = tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in tensor.shape.dim)
    return TensorSpec(value.name, dtype, dims)


def check_model(model: onnx.ModelProto) -> ModelInfo:
    """The contract check, on the graph that is about to be written, plus the opset floor."""
    opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)
    if opset < MIN_OPSET:
        raise ContractError("exported model", [f"opset {opset} < {MIN_OPSET}"])
    graph = model.graph
    initializers = {i.name for i in graph.initializer}  # some exporters list them among the inputs
    inputs = [_spec(i) for i in graph.input if i.name not in initializers]
    return check_signature(inputs, [_spec(o) for o in graph.output],
                           _raw_metadata(model), "exported model")


def write_model(model: onnx.ModelProto, path: Path, report: dict[str, Any], kind: str = "parity") -> Path:
    """Write the model and, beside it, its ``kind`` report (parity, quantization) as ``<name>.<kind>.json``;
    returns the report path."""
    report_path = path.with_name(f"{path.stem}.{kind}.json")
    write_bytes(path, model.SerializeToString())
    write_json(report_path, report)
    return report_path
