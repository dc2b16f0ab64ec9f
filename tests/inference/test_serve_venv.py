"""The service as it is deployed: ``cifar10-serve`` (granian) from a fresh venv where ``pip install '.[serve]'``
installed the project, run outside the repository, over real HTTP (chunked uploads included) and gRPC (its schema
installed with the package)."""

from __future__ import annotations

import subprocess
import threading
import tomllib
from contextlib import contextmanager
from pathlib import Path

import grpc
import pytest

from cifar10_pipeline.inference.config import PORT_FILE_ENV
from cifar10_pipeline.inference.v2.grpc_messages import protos, stub
from harness.server import free_port, wait_port, wait_ready
from tests.support.api import sha256
from tests.support.images import png
from tests.support.net import http, post_chunked, predict
from tests.support.onnx_models import write_model
from tests.support.paths import REPO
from tests.support.reference import expected_label

MAX_UPLOAD_BYTES = 200_000  # the deployed server's upload limit in these tests

pytestmark = pytest.mark.slow


@contextmanager
def server(venv: Path, app_dir: Path, model: Path, log: Path, grpc_port: int):
    """``cifar10-serve`` from ``venv``, started in ``app_dir``, as the images run it, on an HTTP port it picks and
    reports in a port file, gRPC on ``grpc_port`` (which it cannot report: free_port's); yields (base URL,
    process)."""
    port_file = log.with_name(f"{log.name}.port")
    env = {
        "GRPC_PORT": str(grpc_port),
        "PATH": f"{venv / 'bin'}:/usr/bin:/bin",
        "HOME": str(app_dir),
        "HOST": "127.0.0.1",
        "PORT": "0",
        PORT_FILE_ENV: str(port_file),
        "INFERENCE_MODEL_PATH": str(model),
        "INFERENCE_MAX_UPLOAD_BYTES": str(MAX_UPLOAD_BYTES),
    }
    with log.open("wb") as out:
        process = subprocess.Popen(
            [venv / "bin/cifar10-serve"], cwd=app_dir, env=env, stdout=out, stderr=out
        )
    try:
        base = f"http://127.0.0.1:{wait_port(port_file, process, log)}"
        wait_ready(base, process, log)
        yield base, process
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_fresh_serve_venv_classifies_over_http_without_training_frameworks(serve_venv, tmp_path):
    for framework in ("torch", "tensorflow"):
        result = subprocess.run([serve_venv / "bin/python", "-c", f"import {framework}"], capture_output=True, text=True)
        assert result.returncode != 0 and "ModuleNotFoundError" in result.stderr, framework

    app_dir = tmp_path / "app"  # away from the repository: the installed package is all it has
    app_dir.mkdir()
    model = write_model(tmp_path / "model.onnx", seed=0)
    log = tmp_path / "server.log"
    grpc_port = free_port()
    with server(serve_venv, app_dir, model, log, grpc_port) as (base, process):
        status, answer = predict(base, [("red.png", png())])
        assert status == 200 and answer["predictions"][0]["label"] == expected_label((200, 30, 60))

        version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
        assert http("GET", f"{base}/v2")[1]["version"] == version
        assert http("GET", f"{base}/openapi.json")[1]["info"]["version"] == version
        info = http("GET", f"{base}/info")[1]
        assert info["imported_frameworks"] == []
        maps = Path(f"/proc/{info['pid']}/maps").read_text()
        assert "onnxruntime" in maps  # the check below looks at the right process
        assert "torch" not in maps and "tensorflow" not in maps

        # bad input never kills the worker: same pid after, and it still answers
        bad = [b"", b"not an image", png()[:40], png()[: len(png()) // 2]]
        for data in bad:
            status, answer = predict(base, [("bad.png", data)])
            assert 400 <= status < 500 and answer["error"]
        assert http("POST", f"{base}/predict", b"x", "text/plain")[0] == 415
        # chunked bodies (no Content-Length): read in full below the limit, refused as too large above it
        assert post_chunked(base, png())[1]["predictions"][0]["label"] == expected_label((200, 30, 60))
        status, answer = post_chunked(base, png() + bytes(MAX_UPLOAD_BYTES))
        assert status == 413 and answer["error"] == f"request body is larger, at most {MAX_UPLOAD_BYTES} bytes accepted"
        assert http("GET", f"{base}/info")[1]["pid"] == info["pid"]
        assert predict(base, [("again.png", png())])[0] == 200

        # more concurrent clients than the server has threads
        results = []
        threads = [threading.Thread(target=lambda: results.append(predict(base, [("c.png", png())])[0])) for _ in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert results == [200] * 16

        with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
            tensor = protos.ModelInferRequest.InferInputTensor(name="image", datatype="UINT8", shape=[1, 32, 32, 3])
            answer = stub(channel).ModelInfer(protos.ModelInferRequest(
                model_name="classifier", inputs=[tensor], raw_input_contents=[bytes(32 * 32 * 3)]))
        assert answer.model_version == sha256(model) and list(answer.outputs[0].shape) == [1, 10]
    assert process.returncode == 0  # a clean shutdown on SIGTERM
    assert "active providers ['CPUExecutionProvider']" in log.read_text()
