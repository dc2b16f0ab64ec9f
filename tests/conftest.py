"""Fixtures shared by the training and export tests. Those suites run once per framework, each in its own
environment (see the Makefile's test target):

    .venv/bin/python -m pytest                                              # PyTorch (the default --framework)
    .venv-tf/bin/python -m pytest --framework tensorflow FILES...            # TensorFlow

Framework-neutral tests take the ``framework`` (its registry entry) and ``exporter`` fixtures, so both frameworks
pass the same tests; neither framework is imported where it is not installed.

The suite trains untracked (``CIFAR10_TRACKING=off``, inherited by every command it starts): a fresh MLflow store
costs seconds per run. The tracking tests (tests/tracking) turn it on, each with a store of its own.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import ModuleType
from typing import Callable

import pytest

from cifar10_pipeline.export.targets.environments import OPENVINO, TRITONCLIENT
from cifar10_pipeline.model import frameworks
from cifar10_pipeline.model.frameworks import Framework
from cifar10_pipeline.training.loop import TrainResult, train
from tests.support.environments import make_environment
from tests.support.gpus import fake_uuid, nvidia_smi_listing, write_nvidia_smi
from tests.support.runs import tiny_config

os.environ["CIFAR10_TRACKING"] = "off"
os.environ.pop("MLFLOW_TRACKING_URI", None)  # a developer's team server never gets the suite's runs


def pytest_addoption(parser):
    parser.addoption("--framework", choices=frameworks.NAMES, default=frameworks.NAMES[0],
                     help="the framework whose trainer and exporter the shared tests exercise (default: torch)")


@pytest.fixture(scope="session")
def framework(request) -> Framework:
    return frameworks.get(request.config.getoption("--framework"))


@pytest.fixture(scope="session")
def exporter(framework) -> ModuleType:
    """The framework's converter module: convert(model) -> (framework runner, ONNX model, framework version)."""
    return framework.load("converter")


@pytest.fixture(scope="session")
def trained(framework, tmp_path_factory) -> TrainResult:
    """A finished tiny run, trained once per session."""
    return train(tiny_config(tmp_path_factory.mktemp("trained")), framework.name)


@pytest.fixture
def fake_gpus(tmp_path_factory, monkeypatch) -> Callable[[int], list[str]]:
    """``fake_gpus(n)`` makes this process, and every process it starts, see a machine with ``n`` NVIDIA GPUs (a fake
    nvidia-smi first on PATH, CUDA_VISIBLE_DEVICES unset) that the frameworks cannot use; returns their UUIDs."""

    def fake(count: int) -> list[str]:
        folder = tmp_path_factory.mktemp("fake-nvidia-smi")
        write_nvidia_smi(folder, nvidia_smi_listing(count))
        monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
        monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
        return [fake_uuid(i) for i in range(count)]

    return fake


@pytest.fixture(scope="session")
def openvino_python(tmp_path_factory) -> Path:
    """The interpreter of a new .venv-openvino (the project's serving extra on onnxruntime-openvino), made by
    `make install-openvino` once per session."""
    return make_environment(OPENVINO, tmp_path_factory.mktemp("openvino") / "venv")


@pytest.fixture(scope="session")
def tritonclient_python(tmp_path_factory) -> Path:
    """The interpreter of a new tritonclient[http,grpc] environment, made by `make install-tritonclient` once per
    session."""
    return make_environment(TRITONCLIENT, tmp_path_factory.mktemp("tritonclient") / "venv")
