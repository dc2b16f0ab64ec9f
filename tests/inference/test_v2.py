"""The Open Inference Protocol (KServe v2 / Triton HTTP) under /v2: metadata, health, inference in JSON and
binary tensors, classification, every refusal with its status, and a hot swap seen as a new version."""

from __future__ import annotations

import gzip
import json
import struct

import numpy as np
import onnxruntime as ort
import pytest

from cifar10_pipeline.contract import project_version
from cifar10_pipeline.inference.config import ServiceConfig
from tests.support.api import parse_metrics, sha256
from tests.support.onnx_models import CIFAR10_LABELS, reference_logits, write_model

INFER = "/v2/models/classifier/infer"
HEADER_LENGTH = "Inference-Header-Content-Length"


def pixels(n: int, seed: int = 1, shape=(32, 32, 3)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, *shape), dtype=np.uint8)


def onnxruntime_logits(path, images: np.ndarray) -> np.ndarray:
    """The file's logits from a direct onnxruntime call, nothing of the service in between."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(["logits"], {"image": images})[0]


def image_input(images: np.ndarray, nested: bool = False, **overrides) -> dict:
    data = images.tolist() if nested else images.ravel().tolist()
    return {"name": "image", "datatype": "UINT8", "shape": list(images.shape), "data": data, **overrides}


def binary_body(header: dict, *chunks: bytes) -> tuple[bytes, dict]:
    """A binary-tensor request: the JSON header, then ``chunks``; with its Inference-Header-Content-Length."""
    json_part = json.dumps(header).encode()
    return json_part + b"".join(chunks), {HEADER_LENGTH: str(len(json_part))}


def binary_input(images: np.ndarray) -> dict:
    shape = list(images.shape)
    return {"name": "image", "datatype": "UINT8", "shape": shape, "parameters": {"binary_data_size": images.size}}


def split_binary_response(response) -> tuple[dict, bytes]:
    assert response.status_code == 200, response.get_data()
    assert response.mimetype == "application/octet-stream"
    length = int(response.headers[HEADER_LENGTH])
    data = response.get_data()
    return json.loads(data[:length]), data[length:]


def parse_bytes_tensor(raw: bytes) -> list[str]:
    """Triton's serialized BYTES: each element a little-endian uint32 length, then its bytes."""
    strings, offset = [], 0
    while offset < len(raw):
        (n,) = struct.unpack_from("<I", raw, offset)
        strings.append(raw[offset + 4:offset + 4 + n].decode())
        offset += 4 + n
    return strings


# ---------------------------------------------------------------- metadata and health


def test_server_metadata_and_health(client):
    assert client.get("/v2").json == {
        "name": "cifar10-pipeline", "version": project_version(), "extensions": ["binary_tensor_data", "classification"]
    }
    for url in ("/v2/health/live", "/v2/health/ready", "/v2/models/classifier/ready"):
        response = client.get(url)
        assert response.status_code == 200 and response.get_data() == b"", url


def test_model_metadata_names_the_file_id_as_its_version(client, model_path):
    version = sha256(model_path)
    expected = {
        "name": "classifier",
        "versions": [version],
        "platform": "onnx_onnxv1",
        "inputs": [{"name": "image", "datatype": "UINT8", "shape": [-1, 32, 32, 3]}],
        "outputs": [{"name": "logits", "datatype": "FP32", "shape": [-1, 10]}],
    }
    assert client.get("/v2/models/classifier").json == expected
    assert client.get(f"/v2/models/classifier/versions/{version}").json == expected
    assert client.get(f"/v2/models/classifier/versions/{version}/ready").status_code == 200


@pytest.mark.parametrize(
    "url, message",
    [
        ("/v2/models/resnet", "unknown model 'resnet'; this server serves 'classifier'"),
        ("/v2/models/resnet/ready", "unknown model 'resnet'"),
        ("/v2/models/classifier/versions/1", "model 'classifier' has no version '1'"),
        ("/v2/models/classifier/versions/1/ready", "has no version '1'"),
    ],
)
def test_unknown_model_or_version_is_404(client, url, message):
    response = client.get(url)
    assert response.status_code == 404 and message in response.json["error"]


def test_not_ready_without_a_model(make_app, tmp_path):
    client = make_app(model_path=tmp_path / "missing.onnx").test_client()
    assert client.get("/v2/health/live").status_code == 200
    for url in ("/v2/health/ready", "/v2/models/classifier", "/v2/models/classifier/ready"):
        response = client.get(url)
        assert response.status_code == 503 and "no such file" in response.json["error"].lower(), url
    response = client.post(INFER, json={"inputs": [image_input(pixels(1))]})
    assert response.status_code == 503 and "is not ready" in response.json["error"]


def test_model_name_comes_from_the_config(make_app):
    assert ServiceConfig.from_env({"INFERENCE_MODEL_NAME": "cifar10"}).model_name == "cifar10"
    with pytest.raises(ValueError, match="model_name must be a non-empty URL path segment"):
        ServiceConfig(model_name="a/b")
    client = make_app(model_name="cifar10").test_client()
    assert client.get("/info").json["model_name"] == "cifar10"
    assert client.get("/v2/models/cifar10").json["name"] == "cifar10"
    assert client.get("/v2/models/classifier").status_code == 404
    response = client.post("/v2/models/cifar10/infer", json={"inputs": [image_input(pixels(1))]})
    assert response.json["model_name"] == "cifar10"


# ---------------------------------------------------------------- inference


@pytest.mark.parametrize("nested", [False, True], ids=["flat", "nested"])
def test_json_infer_equals_a_direct_onnxruntime_call(client, model_path, nested):
    images = pixels(3)
    response = client.post(INFER, json={"id": "req-7", "inputs": [image_input(images, nested)]})
    assert response.status_code == 200 and response.mimetype == "application/json", response.json
    answer = response.json
    assert (answer["id"], answer["model_name"], answer["model_version"]) == ("req-7", "classifier", sha256(model_path))
    [output] = answer["outputs"]
    assert (output["name"], output["datatype"], output["shape"]) == ("logits", "FP32", [3, 10])
    logits = np.asarray(output["data"], np.float32).reshape(3, 10)
    np.testing.assert_allclose(logits, onnxruntime_logits(model_path, images), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(logits, reference_logits(images, seed=0), atol=1e-4)


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


def test_gzip_request_body(client, model_path):
    images = pixels(1)
    body = gzip.compress(json.dumps({"inputs": [image_input(images)]}).encode())
    response = client.post(INFER, data=body, headers={"Content-Encoding": "gzip"}, content_type="application/json")
    assert response.status_code == 200, response.json
    np.testing.assert_allclose(response.json["outputs"][0]["data"], onnxruntime_logits(model_path, images)[0],
                               atol=1e-6)


def test_batching_on_gives_the_same_logits(make_app, model_path):
    client = make_app(batch_max_size=4, batch_workers=1).test_client()
    images = pixels(6)
    response = client.post(INFER, json={"inputs": [image_input(images)]})
    logits = np.reshape(response.json["outputs"][0]["data"], (6, 10))
    np.testing.assert_allclose(logits, onnxruntime_logits(model_path, images), rtol=1e-6, atol=1e-6)


def expected_classes(logits: np.ndarray, k: int) -> list[list[tuple[int, str]]]:
    return [[(int(i), CIFAR10_LABELS[i]) for i in np.argsort(-row, kind="stable")[:k]] for row in logits]


def check_classification(strings: list[str], logits: np.ndarray, k: int) -> None:
    """``"score:index:label"`` strings, row-major [N, k]: the k best of each row, the score the logit."""
    rows = [strings[i:i + k] for i in range(0, len(strings), k)]
    parsed = [[s.split(":") for s in row] for row in rows]
    assert [[(int(i), label) for _, i, label in row] for row in parsed] == expected_classes(logits, k)
    scores = np.array([[float(score) for score, _, _ in row] for row in parsed])
    np.testing.assert_allclose(scores, np.take_along_axis(logits, np.argsort(-logits, kind="stable")[:, :k], 1),
                               rtol=1e-6, atol=1e-6)


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


def test_a_hot_swap_is_a_new_version_and_the_old_one_is_gone(make_app, model_path, tmp_path):
    app = make_app()
    client = app.test_client()
    old = sha256(model_path)
    write_model(tmp_path / "new.onnx", seed=3).replace(model_path)
    assert app.extensions["inference"].reload()
    new = sha256(model_path)
    assert new != old and client.get("/v2/models/classifier").json["versions"] == [new]
    images = pixels(2)
    for response in (client.post(f"/v2/models/classifier/versions/{old}/infer", json={"inputs": [image_input(images)]}),
                     client.get(f"/v2/models/classifier/versions/{old}/ready")):
        assert response.status_code == 404 and f"the version served is {new}" in response.json["error"]
    response = client.post(f"/v2/models/classifier/versions/{new}/infer", json={"inputs": [image_input(images)]})
    assert response.json["model_version"] == new
    logits = np.reshape(response.json["outputs"][0]["data"], (2, 10))
    np.testing.assert_allclose(logits, onnxruntime_logits(model_path, images), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(logits, reference_logits(images, seed=3), atol=1e-4)


# ---------------------------------------------------------------- refusals


def good(**overrides) -> dict:
    return {"inputs": [image_input(pixels(1))], **overrides}


def with_input(**overrides) -> dict:
    return {"inputs": [image_input(pixels(1), **overrides)]}


def with_output(**parameters) -> dict:
    return good(outputs=[{"name": "logits", "parameters": parameters}])


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
    "too-few-values": (with_input(data=[0] * 3071), 400, "data must be a list of 3072 values"),
    "ragged": (with_input(data=[[0] * 3071 + [[1]]]), 400, "data has ragged lists"),
    "nested-wrong": (with_input(data=[[0, 0, 0]] * 1024), 400, "must be a list of 3072 values"),
    "data-not-a-list": (with_input(data="AAAA"), 400, "must be a list of 3072 values"),
    "value-over-255": (with_input(data=[256] * 3072), 400, "integers from 0 to 255"),
    "negative-value": (with_input(data=[-1] * 3072), 400, "integers from 0 to 255"),
    "float-values": (with_input(data=[0.5] * 3072), 400, "integers from 0 to 255"),
    "string-values": (with_input(data=["1"] * 3072), 400, "integers from 0 to 255"),
    "bool-values": (with_input(data=[True] * 3072), 400, "integers from 0 to 255"),
    "one-bool-among-integers": (with_input(data=[7] * 3071 + [True]), 400, "integers from 0 to 255"),
    "no-data": ({"inputs": [{"name": "image", "datatype": "UINT8", "shape": [1, 32, 32, 3]}]}, 400,
                "has neither 'data' nor parameters.binary_data_size"),
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


def binary_tensor(size=3072, **overrides) -> dict:
    shape = [1, 32, 32, 3]
    return {"name": "image", "datatype": "UINT8", "shape": shape, "parameters": {"binary_data_size": size}, **overrides}


def binary_case(size=3072, sent=3072, length=None, **overrides) -> tuple[bytes, dict]:
    body, headers = binary_body({"inputs": [binary_tensor(size, **overrides)]}, bytes(sent))
    if length is not None:
        headers[HEADER_LENGTH] = length
    return body, headers


BAD_BODIES = {
    # name: ((body, headers), status, a part of the error message)
    "malformed-json": ((b'{"inputs": [', {}), 400, "the inference request is not valid JSON"),
    "not-utf8": ((b'{"id": "\xff"}', {}), 400, "not valid JSON"),
    "nested-deep": ((b"[" * 100_000 + b"]" * 100_000, {}), 400, "not valid JSON"),
    "huge-number": ((b'{"id": ' + b"9" * 5000 + b"}", {}), 400, "not valid JSON"),
    "empty-body": ((b"", {}), 400, "not valid JSON"),
    "header-length-text": (binary_case(length="ten"), 400, f"{HEADER_LENGTH} must be a byte count"),
    "header-length-negative": (binary_case(length="-1"), 400, f"{HEADER_LENGTH} must be a byte count"),
    "header-length-past-the-body": (binary_case(length="99999"), 400, "from 0 to the body's"),
    "header-length-cuts-the-json": (binary_case(length="10"), 400, "not valid JSON"),
    "binary-size-wrong": (binary_case(size=3000, sent=3000), 400, "size 3000, but UINT8 [1, 32, 32, 3] is 3072"),
    "binary-size-text": (binary_case(size="3072"), 400, "binary_data_size '3072'"),
    "binary-bytes-missing": (binary_case(sent=3000), 400, "binary_data_size 3072, but 3000 bytes follow"),
    "binary-bytes-extra": (binary_case(sent=3100), 400, "but 3100 bytes follow"),
    "binary-and-data": (binary_case(data=[0] * 3072), 400, "both 'data' and parameters.binary_data_size"),
    "binary-without-header-length": (
        (json.dumps({"inputs": [binary_tensor()]}).encode(), {}), 400, f"no {HEADER_LENGTH} header"),
    "bytes-after-json-data": (
        binary_body({"inputs": [image_input(pixels(1))]}, b"\0" * 8), 400, "8 bytes follow the JSON header"),
    "unknown-encoding": ((b"{}", {"Content-Encoding": "br"}), 415, "Content-Encoding 'br' is not accepted"),
    "gzip-garbage": ((b"not gzip", {"Content-Encoding": "gzip"}), 400, "cannot be inflated"),
    "gzip-cut-short": ((gzip.compress(b'{"inputs": []}')[:12], {"Content-Encoding": "gzip"}), 400, "cut short"),
}


@pytest.mark.parametrize("case", BAD_BODIES)
def test_bad_bodies_and_binary_data_get_a_4xx_saying_what_is_wrong(client, case):
    (body, headers), status, message = BAD_BODIES[case]
    response = client.post(INFER, data=body, headers=headers, content_type="application/octet-stream")
    assert response.status_code == status and message in response.json["error"], response.json


def test_unknown_model_or_version_for_inference_is_404(client):
    for url in ("/v2/models/resnet/infer", "/v2/models/classifier/versions/abc/infer"):
        response = client.post(url, json=good())
        assert response.status_code == 404 and response.json["error"], url


def test_bodies_over_the_upload_limit_are_413(make_app):
    client = make_app(max_upload_bytes=50_000).test_client()
    images = pixels(2)  # 6144 pixel values: about 25 KB as JSON, 6 KB as binary
    assert client.post(INFER, json={"inputs": [image_input(images)]}).status_code == 200
    response = client.post(INFER, json={"inputs": [image_input(pixels(5))]})
    assert response.status_code == 413 and "at most 50000 bytes accepted" in response.json["error"]
    bomb = gzip.compress(json.dumps({"inputs": [image_input(pixels(1))], "id": " " * 100_000}).encode())
    response = client.post(INFER, data=bomb, headers={"Content-Encoding": "gzip"})
    assert response.status_code == 413 and "inflates to more than 50000 bytes" in response.json["error"]


def test_metrics_count_v2_requests_by_route(client):
    client.post(INFER, json=good())
    client.post(INFER, json={})
    m = parse_metrics(client.get("/metrics").get_data(as_text=True))
    assert m['inference_requests_total{endpoint="/v2/models/<name>/infer",status="200"}'] == 1
    assert m['inference_requests_total{endpoint="/v2/models/<name>/infer",status="400"}'] == 1
