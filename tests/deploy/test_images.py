"""Both serving images as a user starts them, on this machine without a GPU, where the GPU image falls back to the
CPU and must serve as the CPU image does. Each serves the project's CNN (random weights, exported as
`cifar10-export` exports: golden logits from PyTorch) as one replica and is checked over HTTP: every endpoint, the
project's version, the providers (and why CUDA did not start), the golden self-test that made it ready, its user
and its HEALTHCHECK."""

from __future__ import annotations

import json
import re
import tomllib
import urllib.request

import numpy as np
import pytest

from cifar10_pipeline.contract import GOLDEN_ATOL
from cifar10_pipeline.deploy.replicas import podman, stack
from harness.models import make_models
from tests.support.api import parse_metrics, sha256
from tests.support.images import png
from tests.support.net import http, predict
from tests.support.onnx_models import CIFAR10_LABELS
from tests.support.paths import REPO
from tests.support.v2 import image_input, onnxruntime_logits, pixels

pytestmark = pytest.mark.containers

CUDA, CPU = "CUDAExecutionProvider", "CPUExecutionProvider"
PROJECT_VERSION = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]


@pytest.fixture(scope="module")
def cnn(tmp_path_factory):
    return make_models(tmp_path_factory.mktemp("cnn"))[1]


@pytest.fixture(scope="module")
def replica(image, cnn, tmp_path_factory):
    """One container of ``image`` serving ``cnn``, ready (so its golden self-test passed)."""
    state_dir = tmp_path_factory.mktemp("stack")
    up = stack.up(cnn, replicas=1, port=stack.free_base_port(1), state_dir=state_dir, image=image.tag,
                  log=lambda _: None)
    try:
        yield up.replicas[0]
    finally:
        stack.down(state_dir, log=lambda _: None)


def get(url: str) -> tuple[int, str, bytes]:
    with urllib.request.urlopen(url, timeout=30) as r:
        return r.status, r.headers.get_content_type(), r.read()


def pinned(constraints: str, distribution: str) -> str:
    """The version ``constraints`` pins ``distribution`` to."""
    pins = dict(line.split("==") for line in (REPO / constraints).read_text().splitlines() if "==" in line)
    return pins[distribution]


def test_every_endpoint_answers(replica, cnn):
    base = replica.url
    status, content_type, page = get(f"{base}/")
    assert status == 200 and content_type == "text/html" and b'id="file"' in page
    assert http("GET", f"{base}/healthz") == (200, {"status": "alive"})
    assert http("GET", f"{base}/readyz") == (200, {"ready": True, "model_id": sha256(cnn)})
    status, info = http("GET", f"{base}/info")
    assert status == 200 and info["model_id"] == sha256(cnn) and info["labels"] == CIFAR10_LABELS

    status, answer = predict(base, [("a.png", png())])
    assert status == 200 and answer["model_id"] == sha256(cnn)
    prediction = answer["predictions"][0]
    assert prediction["label"] in CIFAR10_LABELS and 0 < prediction["probability"] <= 1
    assert [entry["label"] for entry in prediction["top_k"]][0] == prediction["label"]
    status, answer = http("POST", f"{base}/predict", b"text", "text/plain")
    assert status == 415 and answer["error"]
    status, answer = predict(base, [("cut.png", png()[: len(png()) // 2])])
    assert status == 400 and "truncated" in answer["error"]

    assert http("GET", f"{base}/v2") == (200, {"name": "cifar10-pipeline", "version": PROJECT_VERSION,
                                               "extensions": ["binary_tensor_data", "classification"]})
    for path in ("/v2/health/live", "/v2/health/ready", "/v2/models/classifier/ready"):
        assert get(f"{base}{path}")[0] == 200, path
    status, metadata = http("GET", f"{base}/v2/models/classifier")
    assert status == 200 and metadata["versions"] == [sha256(cnn)]
    images = pixels(4)
    status, answer = http("POST", f"{base}/v2/models/classifier/infer",
                          json.dumps({"inputs": [image_input(images)]}).encode(), "application/json")
    assert status == 200
    logits = np.asarray(answer["outputs"][0]["data"], np.float32).reshape(answer["outputs"][0]["shape"])
    # the image's onnxruntime (the GPU image's is another version) against this environment's, on the CPU both
    assert np.abs(logits - onnxruntime_logits(cnn, images)).max() <= GOLDEN_ATOL

    status, document = http("GET", f"{base}/openapi.json")
    assert status == 200 and document["info"]["version"] == PROJECT_VERSION
    status, content_type, body = get(f"{base}/metrics")
    samples = parse_metrics(body.decode())
    assert status == 200 and content_type == "text/plain"
    assert samples['inference_requests_total{endpoint="/predict",status="200"}'] == 1
    assert any(re.fullmatch(r'inference_model_info\{.*providers="CPUExecutionProvider".*\}', k) for k in samples)


def test_info_says_which_provider_is_active_and_why_cuda_did_not_start(replica, image):
    providers = http("GET", f"{replica.url}/info")[1]["providers"]
    assert providers["active"] == [CPU]
    logs = podman.podman("logs", replica.container)
    log = logs.stdout + logs.stderr
    if image.gpu:
        assert providers["requested"] == [CUDA, CPU] and CUDA in providers["available"]
        assert list(providers["not_started"]) == [CUDA]
        # the driver's library, which the NVIDIA container toolkit mounts where there is a GPU
        assert providers["not_started"][CUDA] == ("libonnxruntime_providers_cuda.so cannot be loaded: libcuda.so.1: "
                                                  "cannot open shared object file: No such file or directory")
        assert log.count(f"{CUDA} was asked for but did not start, serving on ['{CPU}']") == 1
    else:
        assert providers["requested"] == [CPU] and CUDA not in providers["available"]
        assert providers["not_started"] == {}
        assert "did not start" not in log


def test_ready_after_the_golden_self_test_passed_on_the_pinned_onnxruntime(replica, image):
    info = http("GET", f"{replica.url}/info")[1]
    self_test = info["self_test"]
    # compared with the logits PyTorch gave at export: the image's onnxruntime reproduces the framework
    assert info["metadata"]["framework"] == "torch"
    assert self_test["reference"] == "parity" and self_test["compared_to_parity"] is True
    assert 0 <= self_test["max_abs_diff"] <= self_test["atol"]
    assert info["versions"]["onnxruntime"] == pinned(*image.onnxruntime)


def test_runs_as_a_user_without_training_frameworks_and_its_healthcheck_passes(replica, image):
    assert podman.podman("exec", replica.container, "id", "-u").stdout.strip() == "10001"
    assert http("GET", f"{replica.url}/info")[1]["imported_frameworks"] == []
    test = json.loads(podman.podman("image", "inspect", "--format", "{{json .Config.Healthcheck.Test}}",
                                    image.tag).stdout)
    assert test[0] == "CMD"  # exec form: no shell needed in the image
    podman.podman("exec", replica.container, *test[1:])  # raises with its output when the command fails
