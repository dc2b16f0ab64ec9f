"""NVIDIA's tritonclient (gRPC, and its asyncio API), unmodified and in a venv of its own, against the real server's
gRPC port (GRPC_PORT) on loopback: the service's schema equals Triton's message by message, health, metadata,
inference, classification, the refusals it can provoke with their gRPC status codes, and a hot swap it sees as a new
version. Logits are compared with a direct onnxruntime call on the served file."""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from google.protobuf import descriptor_pb2

from cifar10_pipeline.inference.v2.grpc_messages import DESCRIPTOR
from harness.server import call, free_port, served
from tests.support.api import parse_metrics, sha256
from tests.support.net import http
from tests.support.onnx_models import CIFAR10_LABELS, write_model
from tests.support.paths import REPO
from tests.support.polling import wait_for
from tests.support.triton_view import check_health_and_metadata

pytestmark = pytest.mark.slow

MODEL_NAME = "cifar10"  # not the default, so INFERENCE_MODEL_NAME is seen to work
MAX_FILES = 4
CLIENT = REPO / "tests/support/triton_grpc_client.py"
CLIENT_TIMEOUT_S = 120


def run_client(python: Path, grpc_port: int, images: Path, *extra: str) -> dict:
    result = subprocess.run(
        [python, "-I", CLIENT, "--url", f"127.0.0.1:{grpc_port}", "--model", MODEL_NAME, "--images", images,
         "--max-files", str(MAX_FILES), *extra],
        capture_output=True, text=True, timeout=CLIENT_TIMEOUT_S,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def without_json_names(message: descriptor_pb2.DescriptorProto) -> None:
    for field in message.field:
        field.ClearField("json_name")
    for nested in message.nested_type:
        without_json_names(nested)


def check_proto(file_descriptor: str) -> None:
    """Every message and call of the service's schema is Triton's own (tritonclient's descriptor), field for field;
    json_name aside, which protoc derives from the name and the schema leaves to the runtime."""
    theirs = descriptor_pb2.FileDescriptorProto.FromString(base64.b64decode(file_descriptor))
    mine = descriptor_pb2.FileDescriptorProto()
    DESCRIPTOR.CopyToProto(mine)
    for message in [*mine.message_type, *theirs.message_type]:
        without_json_names(message)
    assert mine.package == theirs.package == "inference"
    messages = {m.name: m for m in theirs.message_type}
    assert len(mine.message_type) == 14
    for message in mine.message_type:
        assert message == messages[message.name], message.name
    (service,) = mine.service
    (triton,) = [s for s in theirs.service if s.name == service.name == "GRPCInferenceService"]
    methods = {m.name: m for m in triton.method}
    assert [m.name for m in service.method] == ["ServerLive", "ServerReady", "ModelReady", "ServerMetadata",
                                                "ModelMetadata", "ModelInfer"]
    for method in service.method:
        assert method == methods[method.name], method.name


def check(seen: dict, model: Path, images: np.ndarray) -> None:
    """What the client saw matches the file ``model`` now served, and every refusal has its gRPC status code."""
    version, expected = check_health_and_metadata(seen, model, MODEL_NAME, images)
    infer = seen["infer"]
    for mode in ("raw", "default_outputs", "gzip", "versioned"):
        response = infer[mode]
        assert (response["model_name"], response["model_version"]) == (MODEL_NAME, version), mode
        assert response["outputs"] == [{"name": "logits", "datatype": "FP32", "shape": [len(images), 10]}], mode
        np.testing.assert_allclose(response["values"], expected, rtol=1e-6, atol=1e-6, err_msg=mode)
    np.testing.assert_allclose(infer["aio"]["values"], expected, rtol=1e-6, atol=1e-6)
    assert infer["raw"]["id"] == "raw-1" and infer["versioned"]["id"] == ""

    top3 = np.argsort(-expected, axis=1, kind="stable")[:, :3]
    classification = infer["classification"]
    assert classification["outputs"] == [{"name": "logits", "datatype": "BYTES", "shape": [len(images), 3]}]
    parsed = [[s.split(":") for s in row] for row in classification["values"]]
    assert [[int(i) for _, i, _ in row] for row in parsed] == top3.tolist()
    assert [[label for _, _, label in row] for row in parsed] == [[CIFAR10_LABELS[i] for i in row] for row in top3]
    np.testing.assert_allclose([[float(s) for s, _, _ in row] for row in parsed],
                               np.take_along_axis(expected, top3, axis=1), rtol=1e-6, atol=1e-6)

    errors = seen["errors"]
    statuses = {case: e and e["status"].removeprefix("StatusCode.") for case, e in errors.items()}
    assert statuses == {
        "unknown_model": "NOT_FOUND", "unknown_version": "NOT_FOUND", "unknown_model_metadata": "NOT_FOUND",
        "wrong_input_name": "INVALID_ARGUMENT", "wrong_datatype": "INVALID_ARGUMENT",
        "wrong_shape": "INVALID_ARGUMENT", "too_many_images": "INVALID_ARGUMENT",
        "unknown_output": "INVALID_ARGUMENT", "classification_too_large": "INVALID_ARGUMENT",
        "not_implemented": "UNIMPLEMENTED",
        **({"old_version": "NOT_FOUND"} if "old_version" in errors else {}),
    }
    assert "unknown model 'no-such-model'" in errors["unknown_model"]["message"]
    assert "unknown input 'pixels'" in errors["wrong_input_name"]["message"]
    assert "must be UINT8" in errors["wrong_datatype"]["message"]
    assert "must have shape [N, 32, 32, 3]" in errors["wrong_shape"]["message"]
    assert f"{MAX_FILES + 1} images in one request, at most {MAX_FILES}" in errors["too_many_images"]["message"]


def test_tritonclient_grpc_sees_the_service_as_a_triton_server(triton_python, tmp_path):
    model = write_model(tmp_path / "model.onnx", seed=0)
    images = np.random.default_rng(7).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    np.save(tmp_path / "images.npy", images)
    grpc_port = free_port()
    settings = {"INFERENCE_MODEL_PATH": str(model), "INFERENCE_MODEL_NAME": MODEL_NAME,
                "INFERENCE_MAX_FILES": str(MAX_FILES), "INFERENCE_RELOAD_POLL_S": "0.05", "GRPC_PORT": str(grpc_port)}
    with served(settings, tmp_path / "server.log", "--threads", "2") as base:
        first = run_client(triton_python, grpc_port, tmp_path / "images.npy")
        check_proto(first["file_descriptor"])
        check(first, model, images)

        old = sha256(model)
        write_model(tmp_path / "new.onnx", seed=3).replace(model)
        new = sha256(model)
        wait_for(lambda: http("GET", f"{base}/readyz")[1].get("model_id") == new, "the swap")
        second = run_client(triton_python, grpc_port, tmp_path / "images.npy", "--old-version", old)
        check(second, model, images)
        assert second["model_metadata"]["versions"] == [new] != [old]
        assert not second["old_version_ready"]
        assert f"has no version '{old}'" in second["errors"]["old_version"]["message"]

        # one process, one set of metrics: the gRPC calls are in the HTTP port's /metrics
        status, text = call(int(base.rsplit(":", 1)[1]), "GET", "/metrics")
        metrics = parse_metrics(text.decode())
        infer = 'endpoint="/inference.GRPCInferenceService/ModelInfer"'
        assert status == 200 and metrics[f'inference_requests_total{{{infer},status="OK"}}'] == 2 * 6
        assert metrics[f'inference_requests_total{{{infer},status="INVALID_ARGUMENT"}}'] == 2 * 6
