"""`make ui`: the MLflow UI (the full mlflow, in its own environment) on 127.0.0.1 over the store the trainers wrote,
showing the tracked run, its curves, its logged ONNX model and the registered version; the training environments
hold mlflow-skinny, which has no UI."""

from __future__ import annotations

import json

import pytest

from harness.server import call
from tests.support.mlflow_ui import ui

pytestmark = pytest.mark.slow
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def api(port: int, method: str, path: str, payload: dict | None = None) -> dict:
    status, body = call(port, method, path, json.dumps(payload).encode() if payload else None,
                        {"Content-Type": "application/json"} if payload else None)
    assert status == 200, body[:500]
    return json.loads(body)


def test_make_ui_shows_the_run_its_curves_and_its_models(tracked, registered, tmp_path):
    run = tracked.client.get_run(tracked.run_id)
    with ui(tracked.client.tracking_uri, tmp_path / "ui.log") as server:
        port = server.port
        status, page = call(port, "GET", "/")
        assert status == 200 and b"MLflow" in page
        runs = api(port, "POST", "/ajax-api/2.0/mlflow/runs/search", {"experiment_ids": [run.info.experiment_id]})
        assert tracked.run_id in {r["info"]["run_id"] for r in runs["runs"]}
        status, curves = call(port, "GET", f"/get-artifact?path=run/curves.png&run_uuid={tracked.run_id}")
        assert status == 200 and curves[:8] == PNG_MAGIC
        models = api(port, "POST", "/ajax-api/2.0/mlflow/logged-models/search",
                     {"experiment_ids": [run.info.experiment_id]})
        assert {"onnx", "onnx-int8"} <= {m["info"]["name"] for m in models["models"]
                                         if m["info"].get("source_run_id") == tracked.run_id}
        alias = api(port, "GET", "/ajax-api/2.0/mlflow/registered-models/alias?name=tiny-classifier&alias=champion")
        assert alias["model_version"]["run_id"] == tracked.run_id


def test_the_training_environment_has_no_ui():
    import importlib.resources

    import mlflow

    assert not importlib.resources.files(mlflow).joinpath("server", "js", "build").is_dir()
