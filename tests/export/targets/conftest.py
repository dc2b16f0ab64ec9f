"""Fixtures of the cifar10-targets tests: a tiny exported model of the synthetic data set (its test set has 2,000
images), alone in its folder, as `make export` leaves one."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.onnx_models import write_model


@pytest.fixture
def model(tmp_path) -> Path:
    """``models/model.onnx``: the mean-colour model of tests.support.onnx_models, trained on "synthetic"."""
    folder = tmp_path / "models"
    folder.mkdir()
    return write_model(folder / "model.onnx", seed=0)
