"""Shared fixtures. The suite runs once per framework, each in its own environment:

    .venv/bin/python -m pytest                                   # PyTorch (the default --framework)
    .venv-tf/bin/python -m pytest --framework tensorflow ...     # TensorFlow

Framework-neutral tests (tests/test_trainer.py, tests/test_export.py) take the ``trainer`` and ``exporter``
fixtures, so both frameworks pass the same tests; neither framework is imported where it is not installed.
"""

from __future__ import annotations

import importlib
from types import ModuleType

import pytest

from training.config import TrainConfig

# framework -> (trainer module, exporter module)
FRAMEWORKS = {"torch": ("training.train_torch", "export.torch_export"),
              "tensorflow": ("training.train_tf", "export.tf_export")}

# Small enough for 2 CPU cores in well under a minute, large enough to learn far above chance (10%).
# tta on: the shared export tests then prove that both frameworks' flip TTA survives the export
TINY = {"dataset": "synthetic", "epochs": 3, "width": 16, "batch_size": 128, "lr": 0.1, "tta": True,
        "max_train_samples": 3000, "max_test_samples": 1000}


def pytest_addoption(parser):
    parser.addoption("--framework", choices=sorted(FRAMEWORKS), default="torch",
                     help="the framework whose trainer and exporter the shared tests exercise (default: torch)")


def tiny_config(tmp_path, **overrides) -> TrainConfig:
    return TrainConfig.from_dict({**TINY, "runs_dir": str(tmp_path / "runs"), "run_name": "tiny", **overrides})


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
