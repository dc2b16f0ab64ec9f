"""The service on onnxruntime's OpenVINO execution provider: cifar10-serve from the environment `make
install-openvino` makes (onnxruntime-openvino in place of onnxruntime) with INFERENCE_PROVIDERS=openvino runs the
session on OpenVINO, passes the golden self-test against the exporter's logits there, and classifies."""

from __future__ import annotations

import json

import numpy as np
import pytest

from harness.server import Server
from tests.support.images import png
from tests.support.net import http, predict
from tests.support.onnx_models import reference_logits, write_model
from tests.support.reference import expected_label

pytestmark = pytest.mark.slow

OPENVINO = "OpenVINOExecutionProvider"


def test_the_service_runs_on_openvino_after_its_golden_self_test(openvino_python, tmp_path):
    model = write_model(tmp_path / "model.onnx", seed=0)
    settings = {"INFERENCE_MODEL_PATH": str(model), "INFERENCE_PROVIDERS": "openvino"}
    command = [str(openvino_python), "-m", "cifar10_pipeline.inference.server"]
    with Server(settings, tmp_path / "server.log", command=command, cwd=tmp_path) as server:
        info = http("GET", f"{server.url}/info")[1]
        providers = info["providers"]
        assert providers["requested"] == [OPENVINO] and providers["active"][0] == OPENVINO
        assert providers["not_started"] == {} and info["versions"]["onnxruntime"].startswith("1.24")
        self_test = info["self_test"]
        assert self_test["compared_to_parity"] and self_test["max_abs_diff"] <= self_test["atol"]

        status, answer = predict(server.url, [("red.png", png())])
        assert status == 200 and answer["predictions"][0]["label"] == expected_label((200, 30, 60))
        images = np.random.default_rng(3).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
        body = {"inputs": [{"name": "image", "datatype": "UINT8", "shape": [2, 32, 32, 3],
                            "data": images.ravel().tolist()}]}
        status, answer = http("POST", f"{server.url}/v2/models/classifier/infer", json.dumps(body).encode(),
                              "application/json")
        assert status == 200
        np.testing.assert_allclose(np.reshape(answer["outputs"][0]["data"], (2, 10)), reference_logits(images, 0),
                                   rtol=1e-4, atol=1e-4)
    assert f"active providers ['{OPENVINO}', 'CPUExecutionProvider']" in (tmp_path / "server.log").read_text()
