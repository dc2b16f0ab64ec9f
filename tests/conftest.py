"""Fixtures shared by the training and export tests. Those suites run once per framework, each in its own
environment (see the Makefile's test target):

    .venv/bin/python -m pytest                                              # PyTorch (the default --framework)
    .venv-tf/bin/python -m pytest --framework tensorflow FILES...            # TensorFlow

Framework-neutral tests take the ``framework`` (its registry entry) and ``exporter`` fixtures, so both frameworks
pass the same tests; neither framework is imported where it is not installed.
"""

from __future__ import annotations

from types import ModuleType

import pytest

from cifar10_pipeline.model import frameworks
from cifar10_pipeline.model.frameworks import Framework
from cifar10_pipeline.training.loop import TrainResult, train
from tests.support.runs import tiny_config


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
