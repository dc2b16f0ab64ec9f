"""v2 tensors <-> numpy: the input's pixels from JSON ``data`` or from the binary part of the body, and the logits
out as FP32 or as the classification extension's BYTES, inline in the JSON or as raw little-endian bytes."""

from __future__ import annotations

import itertools
import math
import struct
from typing import Any

import numpy as np

from cifar10_pipeline.contract import INPUT_NAME
from cifar10_pipeline.inference.errors import ApiError
from cifar10_pipeline.inference.postprocess import top_k as best
from cifar10_pipeline.inference.v2.body import HEADER_LENGTH
from cifar10_pipeline.inference.v2.answers import BYTES_DATATYPE, OUTPUT_DATATYPE, BinaryParameters, ResponseOutput
from cifar10_pipeline.inference.v2.request import INPUT_DATATYPE, RequestInput


def read_input(tensor: RequestInput, binary: bytes, header_length_given: bool) -> np.ndarray:
    """The pixels of a validated input tensor, uint8 ``[N, H, W, C]``: its JSON ``data``, or the ``binary`` part of
    the body (``binary_data_size`` bytes, all of it); 400 saying what does not add up."""
    shape = tensor.shape
    count = math.prod(shape)
    size = tensor.parameters.binary_data_size
    if size is None:
        if binary:
            raise ApiError(400, f"{len(binary)} bytes follow the JSON header, but no input has 'binary_data_size'")
        if tensor.data is None:
            raise ApiError(400, f"input {INPUT_NAME!r} has neither 'data' nor parameters.binary_data_size")
        return json_pixels(tensor.data, shape)
    if tensor.data is not None:
        raise ApiError(400, f"input {INPUT_NAME!r} has both 'data' and parameters.binary_data_size")
    if size != count:
        raise ApiError(400, f"input {INPUT_NAME!r} has binary_data_size {size!r:.40}, but {INPUT_DATATYPE} "
                            f"{shape} is {count} bytes")
    if len(binary) != size:
        hint = "" if header_length_given else f" (no {HEADER_LENGTH} header: the whole body is JSON)"
        raise ApiError(400, f"input {INPUT_NAME!r} has binary_data_size {size}, but {len(binary)} bytes follow the "
                            f"JSON header{hint}")
    return np.frombuffer(binary, np.uint8).reshape(shape)


def json_pixels(data: list[Any], shape: list[int]) -> np.ndarray:
    """JSON tensor data, flat (row-major) or nested to ``shape``, as uint8 of ``shape``; 400 if anything is off."""
    count = math.prod(shape)
    nested = tuple(shape)
    if len(data) not in (count, shape[0]):  # cheap, before numpy walks it
        raise ApiError(400, f"input {INPUT_NAME!r} data must be a list of {count} values, flat or nested as {shape}")
    try:
        values = np.array(data)
    except (ValueError, TypeError, RecursionError, OverflowError):  # ragged nesting and the like
        values = None
    if values is None or values.shape not in (nested, (count,)):
        got = "ragged lists" if values is None else f"shape {list(values.shape)}"
        raise ApiError(400, f"input {INPUT_NAME!r} data has {got}; send {count} values, flat or nested as {shape}")
    # numpy reads a JSON true among integers as 1, and 2.0 as an integer would pass the range check: every value's
    # own type is looked at, the nesting flattened with iterators rather than an array of Python objects
    leaves = data
    for _ in range(values.ndim - 1):
        leaves = itertools.chain.from_iterable(leaves)
    if (set(map(type, leaves)) - {int} or values.dtype.kind not in "iu"
            or (values.size and (values.min() < 0 or values.max() > 255))):
        raise ApiError(400, f"input {INPUT_NAME!r} data must hold integers from 0 to 255 ({INPUT_DATATYPE})")
    return values.astype(np.uint8).reshape(shape)


def write_output(name: str, logits: np.ndarray, labels: tuple[str, ...], top_k: int | None,
                 binary: bool) -> tuple[ResponseOutput, bytes | None]:
    """One response output: the logits (FP32), or their classification (BYTES) when ``top_k`` is given; with
    ``binary``, its raw little-endian bytes to follow the JSON header, else its values inline."""
    if top_k is None:
        datatype, shape = OUTPUT_DATATYPE, list(logits.shape)
        values = np.ascontiguousarray(logits, dtype="<f4")
        if not binary:
            return ResponseOutput(name=name, datatype=datatype, shape=shape, data=values.ravel().tolist()), None
        raw = values.tobytes()
    else:
        datatype, shape = BYTES_DATATYPE, [len(logits), top_k]
        strings = classify(logits, labels, top_k)
        if not binary:
            return ResponseOutput(name=name, datatype=datatype, shape=shape, data=strings), None
        raw = encode_bytes(strings)
    return ResponseOutput(name=name, datatype=datatype, shape=shape,
                          parameters=BinaryParameters(binary_data_size=len(raw))), raw


def classify(logits: np.ndarray, labels: tuple[str, ...], top_k: int) -> list[str]:
    """Triton's classification strings ``"score:index:label"``, the ``top_k`` best of each row, row-major; ties
    keep the label order."""
    return [f"{row[i]}:{i}:{labels[i]}" for row, indices in zip(logits, best(logits, top_k)) for i in indices]


def encode_bytes(strings: list[str]) -> bytes:
    """Triton's serialized BYTES tensor: each element a little-endian uint32 length, then its UTF-8 bytes."""
    encoded = [s.encode() for s in strings]
    return b"".join(struct.pack("<I", len(e)) + e for e in encoded)
