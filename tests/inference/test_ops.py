"""The operations routes: liveness, readiness and /info describe the loaded model (and the versions of what serves
it, whichever distribution installed onnxruntime); the upload page at / works offline."""

from __future__ import annotations

import importlib.metadata
import platform

import numpy as np
import onnxruntime as ort
import PIL

from tests.support.api import sha256
from tests.support.onnx_models import CIFAR10_LABELS


def test_health_ready_and_info_describe_the_loaded_model(client, model_path):
    assert client.get("/healthz").json == {"status": "alive"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json == {"ready": True, "model_id": sha256(model_path)}
    info = client.get("/info").json
    assert info["model_id"] == sha256(model_path)
    assert info["labels"] == CIFAR10_LABELS
    assert info["input"] == {"height": 32, "width": 32, "channels": 3}
    assert info["providers"]["active"][-1] == "CPUExecutionProvider"
    assert info["metadata"]["parity"]["golden"]["seed"] == 0
    assert info["self_test"]["compared_to_parity"] is True
    assert info["self_test"]["max_abs_diff"] <= info["self_test"]["atol"]


def test_index_page_is_self_contained(client):
    page = client.get("/")
    assert page.status_code == 200 and page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    assert 'id="file"' in html and 'id="label"' in html and 'fetch(`predict' in html
    assert "http://" not in html and "https://" not in html  # no CDN: works offline


def test_info_reports_the_versions_of_the_modules_it_runs_on(client, monkeypatch):
    # the GPU image installs onnxruntime as the distribution onnxruntime-gpu: no distribution is named onnxruntime
    real = importlib.metadata.Distribution.from_name

    def from_name(name: str):
        if name.lower() == "onnxruntime":
            raise importlib.metadata.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(importlib.metadata.Distribution, "from_name", staticmethod(from_name))
    response = client.get("/info")
    assert response.status_code == 200, response.json
    assert response.json["versions"] == {"python": platform.python_version(), "onnxruntime": ort.__version__,
                                         "numpy": np.__version__, "pillow": PIL.__version__,
                                         "flask": importlib.metadata.version("flask")}
