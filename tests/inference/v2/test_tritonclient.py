"""NVIDIA's tritonclient (HTTP), unmodified and in a venv of its own, against the real server on loopback:
health, metadata, inference in JSON, binary, gzip and deflate, classification, the refusals it can provoke, and a hot
swap it sees as a new version. Logits are compared with a direct onnxruntime call on the served file."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from harness.server import served
from tests.support.api import sha256
from tests.support.net import http
from tests.support.onnx_models import CIFAR10_LABELS, write_model
from tests.support.paths import REPO
from tests.support.polling import wait_for
from tests.support.triton_view import check_health_and_metadata

pytestmark = pytest.mark.slow

MODEL_NAME = "cifar10"  # not the default, so INFERENCE_MODEL_NAME is seen to work
MAX_FILES = 4
CLIENT = REPO / "tests/support/triton_client.py"
CLIENT_TIMEOUT_S = 120


def server(model: Path, log: Path):
    """``python -m cifar10_pipeline.inference.server`` on a free loopback port, watching ``model``; yields its base URL."""
    return served({"INFERENCE_MODEL_PATH": str(model), "INFERENCE_MODEL_NAME": MODEL_NAME,
                   "INFERENCE_MAX_FILES": str(MAX_FILES), "INFERENCE_RELOAD_POLL_S": "0.05"}, log, "--threads", "2")

def run_client(python: Path, base: str, images: Path, *extra: str) -> dict:
    result = subprocess.run(
        [python, "-I", CLIENT, "--url", base.removeprefix("http://"), "--model", MODEL_NAME, "--images", images,
         "--max-files", str(MAX_FILES), *extra],
        capture_output=True, text=True, timeout=CLIENT_TIMEOUT_S,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def check(seen: dict, model: Path, images: np.ndarray) -> None:
    """What the client saw matches the file ``model`` now served, and every refusal has its status."""
    version, expected = check_health_and_metadata(seen, model, MODEL_NAME, images)
    infer = seen["infer"]
    for mode in ("json", "binary", "default_outputs", "gzip", "deflate", "versioned"):
        response = infer[mode]["response"]
        assert (response["model_name"], response["model_version"]) == (MODEL_NAME, version), mode
        assert response["outputs"][0]["shape"] == [len(images), 10] and response["outputs"][0]["datatype"] == "FP32"
        np.testing.assert_allclose(infer[mode]["values"], expected, rtol=1e-6, atol=1e-6, err_msg=mode)
    assert infer["json"]["response"]["id"] == "json-1" and infer["binary"]["response"]["id"] == "binary-1"
    assert "parameters" not in infer["json"]["response"]["outputs"][0]
    for mode in ("binary", "default_outputs"):
        assert infer[mode]["response"]["outputs"][0]["parameters"] == {"binary_data_size": len(images) * 10 * 4}

    top3 = np.argsort(-expected, axis=1, kind="stable")[:, :3]
    for mode in ("classification_binary", "classification_json"):
        strings = infer[mode]["values"]
        assert np.shape(strings) == (len(images), 3), mode
        parsed = [[s.split(":") for s in row] for row in strings]
        assert [[int(i) for _, i, _ in row] for row in parsed] == top3.tolist(), mode
        assert [[label for _, _, label in row] for row in parsed] == [[CIFAR10_LABELS[i] for i in row] for row in top3]
        np.testing.assert_allclose([[float(s) for s, _, _ in row] for row in parsed],
                                   np.take_along_axis(expected, top3, axis=1), rtol=1e-6, atol=1e-6)

    statuses = {case: e and e["status"] for case, e in seen["errors"].items()}
    assert statuses == {
        "unknown_model": 404, "unknown_version": 404, "unknown_model_metadata": 404, "wrong_input_name": 400,
        "wrong_datatype": 400, "wrong_shape": 400, "wrong_shape_json": 400, "too_many_images": 413,
        "unknown_output": 400, "classification_too_large": 400,
        **({"old_version": 404} if "old_version" in seen["errors"] else {}),
    }
    errors = seen["errors"]
    assert "unknown model 'no-such-model'" in errors["unknown_model"]["message"]
    assert "unknown input 'pixels'" in errors["wrong_input_name"]["message"]
    assert "must be UINT8" in errors["wrong_datatype"]["message"]
    assert f"{MAX_FILES + 1} images in one request, at most {MAX_FILES}" in errors["too_many_images"]["message"]


def test_tritonclient_sees_the_service_as_a_triton_server(triton_python, tmp_path):
    model = write_model(tmp_path / "model.onnx", seed=0)
    images = np.random.default_rng(7).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    np.save(tmp_path / "images.npy", images)
    with server(model, tmp_path / "server.log") as base:
        first = run_client(triton_python, base, tmp_path / "images.npy")
        check(first, model, images)

        old = sha256(model)
        write_model(tmp_path / "new.onnx", seed=3).replace(model)
        new = sha256(model)
        wait_for(lambda: http("GET", f"{base}/readyz")[1].get("model_id") == new, "the swap")
        second = run_client(triton_python, base, tmp_path / "images.npy", "--old-version", old)
        check(second, model, images)
        assert second["model_metadata"]["versions"] == [new] != [old]
        assert not second["old_version_ready"]
        assert f"has no version '{old}'" in second["errors"]["old_version"]["message"]
