"""``cifar10-export`` (``python -m cifar10_pipeline.export``): nothing written and exit 1 when a gate refuses the
model, with every figure; clear errors with exit 2; --help."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from cifar10_pipeline.export import pipeline
from cifar10_pipeline.export.__main__ import main as export_main
from cifar10_pipeline.export.converter import Conversion
from cifar10_pipeline.model import frameworks
from tests.support.onnx_edits import tampered


def test_export_cli_writes_nothing_when_parity_fails(trained, converted, exporter, tmp_path, monkeypatch, capsys):
    runner, model, version = converted
    monkeypatch.setattr(exporter, "convert", lambda network: Conversion(runner, tampered(model), version))
    out = tmp_path / "model.onnx"
    assert export_main(["--run", str(trained.run.path), "--out", str(out)]) == 1
    assert not out.exists() and list(tmp_path.iterdir()) == []
    err = capsys.readouterr().err
    assert "parity failed" in err and "nothing written" in err


def _refused(trained, tmp_path, capsys, *extra: str) -> str:
    out = tmp_path / "model.onnx"
    assert export_main(["--run", str(trained.run.path), "--out", str(out), "--quantize", "int8", *extra]) == 1
    assert list(tmp_path.iterdir()) == []  # neither the float file nor the INT8 one
    err = capsys.readouterr().err
    assert "quantization gate failed" in err and "nothing written" in err
    return err


def test_an_impossible_gate_refuses_the_int8_file_and_writes_nothing(trained, tmp_path, capsys):
    err = _refused(trained, tmp_path, capsys, "--max-accuracy-drop", "-1")
    assert "points below the float model's" in err and "at most -1 allowed" in err
    figures = json.loads(err[err.index("{"):])  # every figure, as JSON
    assert figures["max_accuracy_drop_points"] == -1 and not figures["passed"]
    assert {"float_test_accuracy", "int8_test_accuracy", "top1_agreement", "max_abs_diff"} <= set(figures)


def test_a_too_lossy_quantization_is_refused(trained, tmp_path, capsys, monkeypatch):
    quantize_int8 = pipeline.quantize_int8
    # one logit pushed up by 5 after quantization: most images land in one class
    monkeypatch.setattr(pipeline, "quantize_int8", lambda model, images: tampered(quantize_int8(model, images)))
    err = _refused(trained, tmp_path, capsys)
    figures = json.loads(err[err.index("{"):])
    assert figures["accuracy_drop_points"] > 0.3 and figures["top1_agreement"] < 0.9


@pytest.mark.parametrize("args, message", [
    (["--run", "/nonexistent/run"], "is not a run directory"),
    (["--runs-dir", "/nonexistent"], "no run recorded"),
    (["--parity-images", "10"], "use at least 1000"),
    (["--min-agreement", "2"], "must be in [0, 1]"),
    (["--quantize", "int4"], "invalid choice: 'int4'"),
    (["--quantize", "int8", "--calibration-images", "0"], "use at least 1"),
])
def test_export_cli_bad_arguments(args, message):
    result = subprocess.run([sys.executable, "-m", "cifar10_pipeline.export", *args], capture_output=True, text=True)
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr


def test_a_run_of_an_unknown_framework_is_refused_in_one_line(trained, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text((trained.run.path / "config.json").read_text())
    (run / "run.json").write_text(json.dumps({**trained.run.info, "framework": "jax"}))
    assert export_main(["--run", str(run), "--out", str(tmp_path / "model.onnx")]) == 2
    err = capsys.readouterr().err
    assert err == f"error: {run}: unknown framework 'jax'; expected one of {list(frameworks.NAMES)}\n"


def test_export_help():
    result = subprocess.run([sys.executable, "-m", "cifar10_pipeline.export", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "--max-abs-diff" in result.stdout and "--parity-images" in result.stdout
    assert "--quantize {int8}" in result.stdout and "--max-accuracy-drop POINTS" in result.stdout
