"""The v2 protocol's answers as pydantic models: the inference response and the metadata of the server and of the
model, built by ``service`` for both transports (HTTP answers their JSON, gRPC fills its messages from their dumps)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

OUTPUT_DATATYPE = "FP32"
BYTES_DATATYPE = "BYTES"  # the classification extension's strings


class BinaryParameters(BaseModel):
    binary_data_size: int = Field(description="the tensor's bytes in the binary part of the body")


class ResponseOutput(BaseModel):
    name: str
    datatype: Literal[OUTPUT_DATATYPE, BYTES_DATATYPE]
    shape: list[int]
    parameters: BinaryParameters | None = None  # present when the tensor is in the binary part
    data: list[float] | list[str] | None = None  # present when it is not: row-major values


class InferenceResponse(BaseModel):
    model_name: str
    model_version: str = Field(description="the served file's id, sha256")
    outputs: list[ResponseOutput]
    id: str | None = None  # the request's, when it gave one


class TensorMetadata(BaseModel):
    name: str
    datatype: str
    shape: list[int] = Field(description="-1: any size")


class ServerMetadata(BaseModel):
    name: str
    version: str
    extensions: list[str]


class ModelMetadata(BaseModel):
    name: str
    versions: list[str] = Field(description="the one version: the served file's id, sha256")
    platform: str
    inputs: list[TensorMetadata]
    outputs: list[TensorMetadata]
