"""``python -m cifar10_pipeline.export``: nothing written on a parity failure, clear errors, --help."""

from __future__ import annotations

import subprocess
import sys

import pytest

from cifar10_pipeline.export.__main__ import main as export_main
from tests.support.onnx_edits import tampered


def test_export_cli_writes_nothing_when_parity_fails(trained, exporter, tmp_path, monkeypatch, capsys):
    runner, model, version = exporter.convert(trained.run)
    monkeypatch.setattr(exporter, "convert", lambda run: (runner, tampered(model), version))
    out = tmp_path / "model.onnx"
    assert export_main(["--run", str(trained.run.path), "--out", str(out)]) == 1
    assert not out.exists() and list(tmp_path.iterdir()) == []
    err = capsys.readouterr().err
    assert "parity failed" in err and "nothing written" in err


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


def test_export_help():
    result = subprocess.run([sys.executable, "-m", "cifar10_pipeline.export", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "--max-abs-diff" in result.stdout and "--parity-images" in result.stdout
    assert "--quantize {int8}" in result.stdout and "--max-accuracy-drop POINTS" in result.stdout
