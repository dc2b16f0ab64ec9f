"""v2 tensors: pixels from JSON data (flat or nested) or binary bytes, each in its place, logits out as FP32 or
classification BYTES, inline or binary, mixed per tensor; tensor data that does not add up gets a 400 saying what is
wrong."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cifar10_pipeline.inference.v2.codec import write_output
from tests.support.api import sha256
from tests.support.onnx_models import ECHO_SCALE, build_pixel_echo, write_model
from tests.support.v2 import (HEADER_LENGTH, INFER, binary_body, binary_case, binary_input, binary_tensor,
                              check_classification, image_input, onnxruntime_logits, parse_bytes_tensor, pixels,
                              split_binary_response, with_input)


def test_binary_infer_in_and_out(client, model_path):
    images = pixels(4)
    body, headers = binary_body(
        {"inputs": [binary_input(images)], "parameters": {"binary_data_output": True}}, images.tobytes()
    )
    header, raw = split_binary_response(client.post(INFER, data=body, headers=headers))
    [output] = header["outputs"]
    assert output == {"name": "logits", "datatype": "FP32", "shape": [4, 10], "parameters": {"binary_data_size": 160}}
    assert "id" not in header and header["model_version"] == sha256(model_path)
    logits = np.frombuffer(raw, "<f4").reshape(4, 10)
    np.testing.assert_allclose(logits, onnxruntime_logits(model_path, images), rtol=1e-6, atol=1e-6)


def test_binary_and_json_mix_per_tensor(client, model_path):
    images = pixels(2)
    expected = onnxruntime_logits(model_path, images)
    # binary input, JSON output (binary_data false on the output overrides binary_data_output)
    body, headers = binary_body(
        {"inputs": [binary_input(images)], "parameters": {"binary_data_output": True},
         "outputs": [{"name": "logits", "parameters": {"binary_data": False}}]},
        images.tobytes(),
    )
    response = client.post(INFER, data=body, headers=headers)
    assert response.mimetype == "application/json" and HEADER_LENGTH not in response.headers
    np.testing.assert_allclose(np.reshape(response.json["outputs"][0]["data"], (2, 10)), expected, atol=1e-6)
    # JSON input, binary output
    response = client.post(INFER, json={"inputs": [image_input(images)],
                                        "outputs": [{"name": "logits", "parameters": {"binary_data": True}}]})
    _, raw = split_binary_response(response)
    np.testing.assert_allclose(np.frombuffer(raw, "<f4").reshape(2, 10), expected, atol=1e-6)


def test_classification_json_and_binary(client, model_path):
    images = pixels(3)
    expected = onnxruntime_logits(model_path, images)
    response = client.post(INFER, json={"inputs": [image_input(images)],
                                        "outputs": [{"name": "logits", "parameters": {"classification": 3}}]})
    [output] = response.json["outputs"]
    assert (output["datatype"], output["shape"]) == ("BYTES", [3, 3])
    check_classification(output["data"], expected, 3)

    body, headers = binary_body(
        {"inputs": [binary_input(images)],
         "outputs": [{"name": "logits", "parameters": {"classification": 10, "binary_data": True}}]},
        images.tobytes(),
    )
    header, raw = split_binary_response(client.post(INFER, data=body, headers=headers))
    [output] = header["outputs"]
    assert output["shape"] == [3, 10] and output["parameters"]["binary_data_size"] == len(raw)
    check_classification(parse_bytes_tensor(raw), expected, 10)


BAD_DATA = {
    # name: (request, status, a part of the error message)
    "too-few-values": (with_input(data=[0] * 3071), 400, "data must be a list of 3072 values"),
    "ragged": (with_input(data=[[0] * 3071 + [[1]]]), 400, "data has ragged lists"),
    "nested-wrong": (with_input(data=[[0, 0, 0]] * 1024), 400, "must be a list of 3072 values"),
    "nested-flat-row": (with_input(data=[[0] * 3072]), 400, "data has shape [1, 3072]; send 3072 values"),
    "value-over-255": (with_input(data=[256] * 3072), 400, "integers from 0 to 255"),
    "negative-value": (with_input(data=[-1] * 3072), 400, "integers from 0 to 255"),
    "float-values": (with_input(data=[0.5] * 3072), 400, "integers from 0 to 255"),
    "string-values": (with_input(data=["1"] * 3072), 400, "integers from 0 to 255"),
    "bool-values": (with_input(data=[True] * 3072), 400, "integers from 0 to 255"),
    "one-bool-among-integers": (with_input(data=[7] * 3071 + [True]), 400, "integers from 0 to 255"),
    "no-data": ({"inputs": [{"name": "image", "datatype": "UINT8", "shape": [1, 32, 32, 3]}]}, 400,
                "has neither 'data' nor parameters.binary_data_size"),
}


@pytest.mark.parametrize("case", BAD_DATA)
def test_bad_tensor_data_gets_a_4xx_saying_what_is_wrong(client, case):
    body, status, message = BAD_DATA[case]
    response = client.post(INFER, json=body)
    assert response.status_code == status and message in response.json["error"], response.json


BAD_BINARY = {
    # name: ((body, headers), status, a part of the error message)
    "binary-size-wrong": (binary_case(size=3000, sent=3000), 400, "size 3000, but UINT8 [1, 32, 32, 3] is 3072"),
    "binary-size-text": (binary_case(size="3072"), 400, "binary_data_size '3072'"),
    "binary-bytes-missing": (binary_case(sent=3000), 400, "binary_data_size 3072, but 3000 bytes follow"),
    "binary-bytes-extra": (binary_case(sent=3100), 400, "but 3100 bytes follow"),
    "binary-and-data": (binary_case(data=[0] * 3072), 400, "both 'data' and parameters.binary_data_size"),
    "binary-without-header-length": (
        (json.dumps({"inputs": [binary_tensor()]}).encode(), {}), 400, f"no {HEADER_LENGTH} header"),
    "bytes-after-json-data": (
        binary_body({"inputs": [image_input(pixels(1))]}, b"\0" * 8), 400, "8 bytes follow the JSON header"),
}


@pytest.mark.parametrize("case", BAD_BINARY)
def test_bad_binary_data_gets_a_4xx_saying_what_is_wrong(client, case):
    (body, headers), status, message = BAD_BINARY[case]
    response = client.post(INFER, data=body, headers=headers, content_type="application/octet-stream")
    assert response.status_code == status and message in response.json["error"], response.json


def test_missing_binary_bytes_after_a_header_length_get_the_plain_message(client):
    # the hint about a missing header is for requests without one: with the header, the message says no more
    body, headers = binary_case(sent=3000)
    response = client.post(INFER, data=body, headers=headers, content_type="application/octet-stream")
    assert response.json == {"error": "input 'image' has binary_data_size 3072, but 3000 bytes follow the JSON header"}


@pytest.mark.parametrize("binary", [False, True])
def test_logits_go_out_as_little_endian_float32_whatever_the_engine_hands_over(binary):
    # FP32 is the datatype the answer names: float64 or big-endian logits are converted, never passed through
    logits = np.array([[0.1, -2.5, 3.0]], dtype=np.float64)
    for given in (logits, logits.astype(">f4")):
        output, raw = write_output("logits", given, ("a", "b", "c"), None, binary)
        assert (output.datatype, output.shape) == ("FP32", [1, 3])
        if binary:
            assert raw == logits.astype("<f4").tobytes() and output.parameters.binary_data_size == 12
        else:
            assert raw is None and output.data == logits.astype(np.float32).ravel().tolist()


@pytest.mark.parametrize("encoding", ["flat", "nested", "binary"])
def test_the_model_gets_every_pixel_in_its_place(make_app, tmp_path, encoding):
    # the pixel echo's logits are its input pixels: a tensor flipped, rotated or transposed on the way shows here,
    # which the colour-mean models of the other tests cannot see
    shape = (8, 6, 3)
    path = write_model(tmp_path / "echo.onnx", build_pixel_echo(*shape))
    client = make_app(model_path=path).test_client()
    images = pixels(2, shape=shape)
    if encoding == "binary":
        body, headers = binary_body({"inputs": [binary_input(images)]}, images.tobytes())
        response = client.post(INFER, data=body, headers=headers)
    else:
        response = client.post(INFER, json={"inputs": [image_input(images, nested=encoding == "nested")]})
    assert response.status_code == 200, response.get_data()
    logits = np.reshape(response.json["outputs"][0]["data"], (2, 1 + images[0].size))
    echoed = np.rint(logits[:, 1:] / ECHO_SCALE).reshape(images.shape)
    np.testing.assert_array_equal(echoed, images)
