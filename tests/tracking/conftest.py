"""Fixtures of the MLflow tests, which run for both frameworks (``--framework``): a tiny run trained with tracking on
into a store of its own, then exported by `make export REGISTER=1 QUANTIZE=int8`; everything is read back through
the MLflow client.

The suite trains untracked (tests/conftest.py); these fixtures turn tracking on for what they start, and give every
store its own folder.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from cifar10_pipeline.tracking.models import fluent_store
from cifar10_pipeline.training.loop import train
from tests.support.paths import REPO
from tests.support.runs import tiny_config

VENV = Path(sys.executable).parent.parent  # this test's environment, the framework's own
# the tests' tiny run (3 epochs: its INT8 twin passes the default gate in both frameworks), tracked
TRACKED = {"tracking": True}


@pytest.fixture
def tracking_on(monkeypatch):
    """Tracking on for this test and the commands it starts, in the store its runs_dir gets (no team server)."""
    monkeypatch.setenv("CIFAR10_TRACKING", "on")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


def client(runs_dir: Path):
    """An MLflow client on the embedded store of ``runs_dir``."""
    from mlflow import MlflowClient

    uri = f"sqlite:///{(runs_dir / 'mlflow.db').resolve()}"
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


@pytest.fixture(scope="session")
def tracked(framework, tmp_path_factory) -> SimpleNamespace:
    """The tiny run, tracked: its TrainResult, runs_dir and MLflow client."""
    config = tiny_config(tmp_path_factory.mktemp("tracked"), **TRACKED)
    result = train(config, framework.name)
    runs_dir = Path(config.runs_dir)
    return SimpleNamespace(result=result, runs_dir=runs_dir, client=client(runs_dir),
                           run_id=result.run.info["mlflow"]["run_id"])


@pytest.fixture
def fluent(tracked):
    """MLflow's fluent API (``mlflow.search_logged_models``, ``mlflow.onnx.load_model``, downloads) on the tracked
    run's store for this test only: ``mlflow.set_tracking_uri`` writes os.environ, which every later test and the
    processes it starts (torchrun's, say) would inherit."""
    with fluent_store(tracked.client.tracking_uri):
        yield


@pytest.fixture(scope="session")
def registered(tracked, tmp_path_factory) -> SimpleNamespace:
    """`make export REGISTER=1 QUANTIZE=int8 NAME=tiny-classifier` of the tracked run: the float file's path and the
    command's output."""
    out = tmp_path_factory.mktemp("registered") / "model.onnx"
    installed = str(VENV / ".installed")
    env = {**os.environ, "CIFAR10_TRACKING": "on"}
    result = subprocess.run(
        ["make", "-C", str(REPO), "export", f"RUN={tracked.result.run.path}", f"MODEL={out}", "QUANTIZE=int8",
         "REGISTER=1", "NAME=tiny-classifier", f"VENV={VENV}", f"TF_VENV={VENV}", "-o", installed],
        capture_output=True, text=True, timeout=1200, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    return SimpleNamespace(model=out, out=result.stdout, err=result.stderr)
