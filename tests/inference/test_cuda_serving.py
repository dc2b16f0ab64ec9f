"""On an NVIDIA GPU (marker ``gpu``: `make test-gpu` runs it, `make test` deselects it): the service in the
onnxruntime-gpu environment (``make install-serve-gpu``, what the GPU image installs) serves on onnxruntime's CUDA
provider: the model's golden self-test passes under CUDA and a /v2 request is answered there with the model's
logits."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.server import SERVE_GPU_PYTHON, Server, call
from tests.support.onnx_models import reference_logits, write_model
from tests.support.v2 import INFER, image_input, pixels

pytestmark = pytest.mark.gpu


def test_the_service_answers_on_onnxruntimes_cuda_provider(tmp_path: Path):
    assert SERVE_GPU_PYTHON.exists(), f"{SERVE_GPU_PYTHON} is missing: make install-serve-gpu (make test-gpu makes it)"
    model = write_model(tmp_path / "model.onnx", seed=0)
    settings = {"INFERENCE_MODEL_PATH": str(model), "INFERENCE_PROVIDERS": "CUDAExecutionProvider"}
    with Server(settings, tmp_path / "serve.log", command=(str(SERVE_GPU_PYTHON), "-m",
                                                           "cifar10_pipeline.inference.server")) as server:
        status, body = call(server.port, "GET", "/info")
        assert status == 200, body
        providers = json.loads(body)["providers"]
        assert providers["active"][0] == "CUDAExecutionProvider", providers
        images = pixels(4)
        status, body = call(server.port, "POST", INFER, json.dumps({"inputs": [image_input(images)]}).encode(),
                            {"Content-Type": "application/json"})
    assert status == 200, body
    answer = json.loads(body)
    assert answer["outputs"][0]["shape"] == [4, 10]
    assert answer["outputs"][0]["data"] == pytest.approx(reference_logits(images, seed=0).ravel().tolist(), abs=1e-3)
