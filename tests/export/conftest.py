"""Fixtures of the export tests, which run for both frameworks (``--framework``): the tiny run's model converted,
and exported once by the command (the float file) and once by `make export QUANTIZE=int8` (float and INT8)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from cifar10_pipeline.export.__main__ import main as export_main
from cifar10_pipeline.export.converter import Conversion
from cifar10_pipeline.export.pipeline import convert_run
from cifar10_pipeline.model import frameworks
from tests.support.paths import REPO

VENV = Path(sys.executable).parent.parent  # this test's environment, the framework's own
# these run in the TensorFlow environment only (the Makefile's TF_TESTS): the Keras runner needs Keras, and the
# cross-framework tests hold this environment to the PyTorch one
collect_ignore = [] if frameworks.get("tensorflow").installed() else ["test_keras_runner.py", "test_cross_framework.py"]
# cifar10-targets reads exported files and trains nothing: the PyTorch environment runs its tests, once
collect_ignore += ["targets"] if frameworks.get("tensorflow").installed() else []


@pytest.fixture(scope="session")
def converted(trained, framework) -> Conversion:
    """The tiny run's model as the pipeline converts it: (framework runner, ONNX model, framework version).
    Shared: edit a copy of the model (tests.support.onnx_edits makes copies)."""
    return convert_run(trained.run, framework)


@pytest.fixture(scope="session")
def exported(trained, tmp_path_factory) -> Path:
    """`cifar10-export` of the tiny run: the ONNX file's path."""
    out = tmp_path_factory.mktemp("export") / "model.onnx"
    assert export_main(["--run", str(trained.run.path), "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="session")
def made(trained, tmp_path_factory) -> Path:
    """`make export QUANTIZE=int8` of the tiny run, in this environment: the float file's path."""
    out = tmp_path_factory.mktemp("make-export") / "model.onnx"
    installed = str(VENV / ".installed")
    result = subprocess.run(
        ["make", "-C", str(REPO), "export", f"RUN={trained.run.path}", f"MODEL={out}", "QUANTIZE=int8",
         f"VENV={VENV}", f"TF_VENV={VENV}", "-o", installed],
        capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "int8 on 2000 test images" in result.stderr
    return out
