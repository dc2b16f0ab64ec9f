"""The OpenVINO row of the table: cifar10-targets runs the model on onnxruntime's OpenVINO execution provider in
the environment `make install-openvino` makes, through the worker, on the whole test set."""

from __future__ import annotations

import json

import pytest

from cifar10_pipeline.export.targets import __main__ as targets

pytestmark = pytest.mark.slow


def test_the_openvino_row_runs_on_openvino_and_agrees(model, openvino_python, monkeypatch, capsys):
    monkeypatch.setenv("OPENVINO_VENV", str(openvino_python.parent.parent))
    code = targets.main(["--model", str(model), "--skip", "ort", "browser", "triton", "--latency-runs", "20"])
    assert code == 0, capsys.readouterr().err
    reference, openvino = json.loads((model.parent / "targets.json").read_text())["rows"]
    assert openvino["target"] == "OpenVINO (onnxruntime-openvino)" and openvino["passed"]
    assert openvino["engine"].startswith("onnxruntime 1.24") and "(OpenVINOExecutionProvider" in openvino["engine"]
    assert openvino["top1_agreement"] >= 0.999 and openvino["max_abs_diff"] < 1e-4
    assert openvino["test_accuracy"] == pytest.approx(reference["test_accuracy"], abs=0.001)
    assert openvino["p50_ms"] > 0
