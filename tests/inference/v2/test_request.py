"""The v2 request's JSON header validated by the pydantic models against the served model: every malformed
request gets a 4xx whose message says what is wrong (never pydantic's 422 wording or a 500)."""

from __future__ import annotations

import pytest

from cifar10_pipeline.inference.v2.request import Limits, parse_request, refusal
from tests.support.v2 import INFER, good, image_input, pixels, with_input, with_output

BAD_JSON_REQUESTS = {
    # name: (request, status, a part of the error message)
    "wrong-input-name": (with_input(name="pixels"), 400, "unknown input 'pixels'"),
    "two-inputs": ({"inputs": [image_input(pixels(1))] * 2}, 400, "input 'image' is given 2 times"),
    "no-inputs": ({"outputs": []}, 400, "'inputs' must be a list holding one tensor"),
    "input-not-an-object": ({"inputs": ["image"]}, 400, "each input must be a JSON object"),
    "wrong-datatype": (with_input(datatype="FP32"), 400, "must be UINT8, got datatype 'FP32'"),
    "wrong-size": (with_input(shape=[1, 28, 28, 3]), 400, "must have shape [N, 32, 32, 3], got [1, 28, 28, 3]"),
    "three-dims": (with_input(shape=[32, 32, 3]), 400, "must have shape [N, 32, 32, 3]"),
    "float-dims": (with_input(shape=[1.0, 32, 32, 3]), 400, "must have shape [N, 32, 32, 3]"),
    "zero-images": (with_input(shape=[0, 32, 32, 3], data=[]), 400, "holds 0 images, at least 1 is needed"),
    "data-not-a-list": (with_input(data="AAAA"), 400, "must be a list of 3072 values"),
    "wrong-output-name": (good(outputs=[{"name": "probabilities"}]), 400, "unknown output 'probabilities'"),
    "output-twice": (good(outputs=[{"name": "logits"}] * 2), 400, "output 'logits' is requested twice"),
    "output-not-an-object": (good(outputs=["logits"]), 400, "each requested output must be a JSON object"),
    "classification-0": (with_output(classification=0), 400, "an integer from 1 to 10, got 0"),
    "classification-11": (with_output(classification=11), 400, "an integer from 1 to 10, got 11"),
    "classification-text": (with_output(classification="3"), 400, "an integer from 1 to 10, got '3'"),
    "classification-bool": (with_output(classification=True), 400, "an integer from 1 to 10, got True"),
    "binary-data-not-bool": (with_output(binary_data="yes"), 400, "'binary_data' of output 'logits' must be true"),
    "binary-output-not-bool": (good(parameters={"binary_data_output": 1}), 400, "'binary_data_output'"),
    "parameters-not-an-object": (good(parameters=[]), 400, "'parameters' of the request must be a JSON object"),
    "id-not-a-string": (good(id=7), 400, "'id' must be a string, got 7"),
    "not-an-object": ([1, 2], 400, "must be a JSON object, got list"),
    "too-many-images": ({"inputs": [image_input(pixels(17))]}, 413, "17 images in one request, at most 16"),
}


@pytest.mark.parametrize("case", BAD_JSON_REQUESTS)
def test_bad_json_requests_get_a_4xx_saying_what_is_wrong(client, case):
    body, status, message = BAD_JSON_REQUESTS[case]
    response = client.post(INFER, json=body)
    assert response.status_code == status and message in response.json["error"], response.json


def test_the_first_error_is_answered_in_the_order_of_the_fields(client):
    # a wrong id and a wrong input: the id comes first in the request, as it always has in the answer
    response = client.post(INFER, json={"id": 7, "inputs": [image_input(pixels(1), name="pixels")]})
    assert response.status_code == 400 and response.json["error"] == "'id' must be a string, got 7"
    # an unknown input among two: its name, not the count, is what is wrong
    response = client.post(INFER, json={"inputs": [image_input(pixels(1)), image_input(pixels(1), name="mask")]})
    assert response.json["error"] == "unknown input 'mask'; the model's only input is 'image'"


def test_any_other_validation_error_is_a_400_naming_its_field():
    error = {"type": "int_parsing", "loc": ("inputs", 0, "extra"), "msg": "Input should be a valid integer",
             "input": "x"}
    e = refusal(error, {}, Limits((32, 32, 3), 10, 16))
    assert (e.status, e.message) == (400, "inputs.0.extra: Input should be a valid integer")


def test_a_valid_request_is_parsed_with_its_defaults():
    request = parse_request({"inputs": [image_input(pixels(2))]}, Limits((32, 32, 3), 10, 16))
    assert request.id is None and request.outputs is None and request.parameters.binary_data_output is False
    (tensor,) = request.inputs
    assert tensor.shape == [2, 32, 32, 3] and len(tensor.data) == 2 * 32 * 32 * 3
    assert tensor.parameters.binary_data_size is None
