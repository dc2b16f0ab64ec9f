"""Fixtures shared by the training and export tests. Those suites run once per framework, each in its own
environment (see the Makefile's test target):

    .venv/bin/python -m pytest                                              # PyTorch (the default --framework)
    .venv-tf/bin/python -m pytest --framework tensorflow FILES...            # TensorFlow

Framework-neutral tests take the ``trainer`` and ``exporter`` fixtures, so both frameworks pass the same tests;
neither framework is imported where it is not installed.
"""

from __future__ import annotations

import importlib
from types import ModuleType

import pytest

from tests.support.runs import tiny_config

# framework -> (trainer module, exporter module)
FRAMEWORKS = {"torch": ("training.train_torch", "export.torch_export"),
              "tensorflow": ("training.train_tf", "export.tf_export")}


def pytest_addoption(parser):
    parser.addoption("--framework", choices=sorted(FRAMEWORKS), default="torch",
                     help="the framework whose trainer and exporter the shared tests exercise (default: torch)")


@pytest.fixture(scope="session")
def framework(request) -> str:
    return request.config.getoption("--framework")


@pytest.fixture(scope="session")
def trainer(framework) -> ModuleType:
    """The trainer module: FRAMEWORK, MODEL_FILE, CHECKPOINT_FILE, train(), main()."""
    return importlib.import_module(FRAMEWORKS[framework][0])


@pytest.fixture(scope="session")
def exporter(framework) -> ModuleType:
    """The exporter module: convert(run) -> (framework runner, ONNX model, framework version)."""
    return importlib.import_module(FRAMEWORKS[framework][1])


@pytest.fixture(scope="session")
def trained(trainer, tmp_path_factory):
    """A finished tiny run (its TrainResult), trained once per session."""
    return trainer.train(tiny_config(tmp_path_factory.mktemp("trained")))
