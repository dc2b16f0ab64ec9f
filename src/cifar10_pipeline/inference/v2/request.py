"""The v2 inference request's JSON header as pydantic models, validated against the served model.

A request is validated with ``parse_request``: the model's input shape, classes and the image limit come in as
pydantic's validation context (``Limits``), so every check of the JSON header is made here, in the order of its
fields. A refusal is an ApiError whose message names the field and what it holds, as the service has always
answered: ``refusal`` turns pydantic's first error into it. The tensor's content (JSON data or binary bytes) is
the codec's to read.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import (BaseModel, Field, StrictBool, StrictInt, StrictStr, ValidationError, ValidationInfo,
                      field_validator)
from pydantic_core import ErrorDetails, PydanticCustomError

from cifar10_pipeline.contract import INPUT_NAME, OUTPUT_NAME
from cifar10_pipeline.inference.errors import ApiError

INPUT_DATATYPE = "UINT8"
REFUSED = "refused"  # the type of a pydantic error that already carries the service's message and status


@dataclass(frozen=True)
class Limits:
    """What a request is validated against (the validation context): the served model and the image limit."""

    input_shape: tuple[int, int, int]  # height, width, channels
    num_classes: int
    max_files: int  # images in one request


def _refuse(message: str, status: int = 400) -> PydanticCustomError:
    return PydanticCustomError(REFUSED, "{message}", {"message": message, "status": status})


def _shape_message(shape: Any, limits: Limits) -> str:
    height, width, channels = limits.input_shape
    return f"input {INPUT_NAME!r} must have shape [N, {height}, {width}, {channels}], got {shape!r:.80}"


class RequestParameters(BaseModel):
    binary_data_output: StrictBool = Field(False, description="every output in binary unless it says otherwise")


def _absent_not_null(schema: dict[str, Any]) -> None:
    """The JSON schema of a field that may be left out but is never null: no ``default`` (its None would contradict
    the field's type, and OpenAPI validators refuse the document)."""
    schema.pop("default", None)


class InputParameters(BaseModel):
    binary_data_size: StrictInt | None = Field(None, description="the tensor's bytes in the binary part of the body")


class RequestInput(BaseModel):
    name: Literal[INPUT_NAME]
    datatype: Literal[INPUT_DATATYPE]
    shape: Annotated[list[StrictInt], Field(min_length=4, max_length=4, description="[N, height, width, channels]")]
    parameters: InputParameters = Field(default_factory=InputParameters)
    # absent (None) when the tensor is in the binary part; null is refused as any other non-list
    data: list[Any] = Field(None, description="N*H*W*C integers 0-255, flat (row-major) or nested as the shape",
                            json_schema_extra=_absent_not_null)

    @field_validator("shape")
    @classmethod
    def _fits_the_model(cls, shape: list[int], info: ValidationInfo) -> list[int]:
        limits: Limits = info.context
        if shape[1:] != list(limits.input_shape):
            raise _refuse(_shape_message(shape, limits))
        if shape[0] < 1:
            raise _refuse(f"input {INPUT_NAME!r} holds {shape[0]} images, at least 1 is needed")
        if shape[0] > limits.max_files:
            raise _refuse(f"{shape[0]} images in one request, at most {limits.max_files} accepted", 413)
        return shape


class OutputParameters(BaseModel):
    # None when absent: the request's binary_data_output decides; null is refused as any other non-boolean
    binary_data: StrictBool = Field(None, description="this output in binary (default: the request's "
                                                      "binary_data_output)", json_schema_extra=_absent_not_null)
    classification: StrictInt | None = Field(None, ge=1, description="top k of each row as BYTES 'score:index:label'")

    @field_validator("classification")
    @classmethod
    def _at_most_the_classes(cls, top_k: int | None, info: ValidationInfo) -> int | None:
        num_classes = info.context.num_classes
        if top_k is not None and top_k > num_classes:
            raise _refuse(_classification_message(top_k, num_classes))
        return top_k


def _classification_message(top_k: Any, num_classes: int) -> str:
    return (f"parameter 'classification' of output {OUTPUT_NAME!r} must be an integer from 1 to {num_classes}, "
            f"got {top_k!r:.40}")


class RequestOutput(BaseModel):
    name: Literal[OUTPUT_NAME]
    parameters: OutputParameters = Field(default_factory=OutputParameters)


class InferenceRequest(BaseModel):
    id: StrictStr | None = None
    parameters: RequestParameters = Field(default_factory=RequestParameters)
    inputs: Annotated[list[RequestInput], Field(min_length=1, json_schema_extra={"maxItems": 1})]
    outputs: list[RequestOutput] | None = Field(None, description="absent or empty: every output")

    @field_validator("inputs")
    @classmethod
    def _one_input(cls, inputs: list[RequestInput]) -> list[RequestInput]:
        if len(inputs) > 1:
            raise _refuse(f"input {INPUT_NAME!r} is given {len(inputs)} times")
        return inputs

    @field_validator("outputs")
    @classmethod
    def _each_output_once(cls, outputs: list[RequestOutput] | None) -> list[RequestOutput] | None:
        if outputs is not None and len(outputs) > len({o.name for o in outputs}):
            raise _refuse(f"output {OUTPUT_NAME!r} is requested twice")
        return outputs


def parse_request(header: Any, limits: Limits) -> InferenceRequest:
    """The JSON header of an inference request, validated against ``limits``; an ApiError saying what is wrong."""
    try:
        return InferenceRequest.model_validate(header, context=limits)
    except ValidationError as e:
        raise refusal(e.errors(include_url=False)[0], header, limits) from None


def refusal(error: ErrorDetails, header: Any, limits: Limits) -> ApiError:
    """The ApiError answering pydantic's ``error`` in the request ``header``: the message a validator gave, or one
    naming the field (list positions aside) and the value the client sent there."""
    if error["type"] == REFUSED:
        return ApiError(error["ctx"]["status"], error["ctx"]["message"])
    loc = error["loc"]
    field = tuple("*" if isinstance(key, int) else key for key in loc)
    value = _sent(header, loc)
    match field:
        case ():
            message = f"the inference request must be a JSON object, got {type(header).__name__}"
        case ("id",):
            message = f"'id' must be a string, got {value!r:.80}"
        case ("parameters",):
            message = f"'parameters' of the request must be a JSON object, got {value!r:.80}"
        case ("parameters", key):
            message = f"parameter {key!r} of the request must be true or false, got {value!r:.80}"
        case ("inputs",):
            message = f"'inputs' must be a list holding one tensor, {INPUT_NAME!r}"
        case ("inputs", "*"):
            message = "each input must be a JSON object with 'name', 'datatype', 'shape' and 'data'"
        case ("inputs", "*", "name"):
            message = f"unknown input {value!r:.80}; the model's only input is {INPUT_NAME!r}"
        case ("inputs", "*", "datatype"):
            message = f"input {INPUT_NAME!r} must be {INPUT_DATATYPE}, got datatype {value!r:.80}"
        case ("inputs", "*", "shape", *_):
            message = _shape_message(_sent(header, loc[:3]), limits)
        case ("inputs", "*", "parameters"):
            message = f"'parameters' of input {INPUT_NAME!r} must be a JSON object, got {value!r:.80}"
        case ("inputs", "*", "parameters", "binary_data_size"):
            shape = _sent(header, (*loc[:2], "shape"))  # valid: the shape's errors come first
            message = (f"input {INPUT_NAME!r} has binary_data_size {value!r:.40}, but {INPUT_DATATYPE} {shape} is "
                       f"{math.prod(shape)} bytes")
        case ("inputs", "*", "data"):
            shape = _sent(header, (*loc[:2], "shape"))
            message = (f"input {INPUT_NAME!r} data must be a list of {math.prod(shape)} values, flat or nested as "
                       f"{shape}")
        case ("outputs",):
            message = f"'outputs' must be a list, got {type(value).__name__}"
        case ("outputs", "*"):
            message = f"each requested output must be a JSON object with a 'name', got {value!r:.80}"
        case ("outputs", "*", "name"):
            message = f"unknown output {value!r:.80}; the model's only output is {OUTPUT_NAME!r}"
        case ("outputs", "*", "parameters"):
            message = f"'parameters' of output {OUTPUT_NAME!r} must be a JSON object, got {value!r:.80}"
        case ("outputs", "*", "parameters", "classification"):
            message = _classification_message(value, limits.num_classes)
        case ("outputs", "*", "parameters", key):
            message = f"parameter {key!r} of output {OUTPUT_NAME!r} must be true or false, got {value!r:.80}"
        case _:  # every field is named above; this keeps any other a 400 all the same
            message = f"{'.'.join(map(str, loc))}: {error['msg']}"
    return ApiError(400, message)


def _sent(header: Any, loc: tuple[int | str, ...]) -> Any:
    """What the client sent at ``loc`` of its JSON, None where it sent nothing."""
    for key in loc:
        try:
            header = header[key]
        except (KeyError, IndexError, TypeError):
            return None
    return header
