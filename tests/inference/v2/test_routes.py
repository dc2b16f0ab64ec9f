"""The /v2 routes: server and model metadata, health, inference equal to a direct onnxruntime call, the model's
name and version (a hot swap is a new version), 404 and 503, and the request metrics of each route."""

from __future__ import annotations

import numpy as np
import pytest

from cifar10_pipeline.contract import project_version
from cifar10_pipeline.inference.config import ServiceConfig
from tests.support.api import parse_metrics, sha256
from tests.support.onnx_models import reference_logits, write_model
from tests.support.v2 import INFER, good, image_input, onnxruntime_logits, pixels


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


def test_batching_on_gives_the_same_logits(make_app, model_path):
    client = make_app(batch_max_size=4, batch_workers=1).test_client()
    images = pixels(6)
    response = client.post(INFER, json={"inputs": [image_input(images)]})
    logits = np.reshape(response.json["outputs"][0]["data"], (6, 10))
    np.testing.assert_allclose(logits, onnxruntime_logits(model_path, images), rtol=1e-6, atol=1e-6)


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


def test_unknown_model_or_version_for_inference_is_404(client):
    for url in ("/v2/models/resnet/infer", "/v2/models/classifier/versions/abc/infer"):
        response = client.post(url, json=good())
        assert response.status_code == 404 and response.json["error"], url


def test_metrics_count_v2_requests_by_route(client):
    client.post(INFER, json=good())
    client.post(INFER, json={})
    m = parse_metrics(client.get("/metrics").get_data(as_text=True))
    assert m['inference_requests_total{endpoint="/v2/models/<name>/infer",status="200"}'] == 1
    assert m['inference_requests_total{endpoint="/v2/models/<name>/infer",status="400"}'] == 1
