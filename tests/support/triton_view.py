"""What NVIDIA's tritonclient saw of the service, over HTTP or gRPC (the JSON object the client scripts
tests/support/triton_client.py and triton_grpc_client.py print): the parts both protocols must show alike."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

from tests.support.api import sha256


def check_health_and_metadata(seen: dict, model: Path, model_name: str, images: np.ndarray) -> tuple[str, np.ndarray]:
    """Health, readiness and metadata match the file ``model`` served as ``model_name``; returns its version (the
    file's sha256) and onnxruntime's logits for uint8 ``images`` [N, 32, 32, 3], which the answers must equal."""
    version = sha256(model)
    expected = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"]).run(None, {"image": images})[0]
    assert seen["live"] and seen["ready"] and seen["model_ready"] and seen["version_ready"]
    assert not seen["unknown_model_ready"]
    assert seen["server_metadata"]["extensions"] == ["binary_tensor_data", "classification"]
    assert seen["model_metadata"] == {
        "name": model_name, "versions": [version], "platform": "onnx_onnxv1",
        "inputs": [{"name": "image", "datatype": "UINT8", "shape": [-1, 32, 32, 3]}],
        "outputs": [{"name": "logits", "datatype": "FP32", "shape": [-1, 10]}],
    }
    return version, expected
