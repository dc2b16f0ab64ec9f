"""Tracking's settings, decided without MLflow: on or off, the store, names, and what counts as an MLflow
reference."""

from __future__ import annotations

import pytest

from cifar10_pipeline.tracking.settings import (TrackingError, enabled_by_env, experiment_name, is_reference,
                                                 registered_name, tracking_uri)
from cifar10_pipeline.training.config import ConfigError, TrainConfig


@pytest.mark.parametrize("value, enabled", [(None, True), ("on", True), ("1", True), ("off", False),
                                            ("FALSE", False), ("0", False), ("no", False)])
def test_the_environment_sets_the_default(monkeypatch, value, enabled):
    if value is None:
        monkeypatch.delenv("CIFAR10_TRACKING", raising=False)
    else:
        monkeypatch.setenv("CIFAR10_TRACKING", value)
    assert enabled_by_env() is enabled
    assert TrainConfig().tracking is enabled
    assert TrainConfig.from_dict({"tracking": not enabled}).tracking is not enabled  # a flag or --params wins


def test_a_bad_value_is_refused(monkeypatch):
    monkeypatch.setenv("CIFAR10_TRACKING", "sometimes")
    with pytest.raises(TrackingError):
        enabled_by_env()
    with pytest.raises(ConfigError, match="CIFAR10_TRACKING='sometimes': use on or off"):
        TrainConfig()


def test_the_store_is_embedded_unless_a_uri_is_set(monkeypatch, tmp_path):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert tracking_uri(tmp_path / "runs") == f"sqlite:///{tmp_path / 'runs' / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://tracking.example:5000")
    assert tracking_uri(tmp_path / "runs") == "http://tracking.example:5000"


def test_names_come_from_the_data_set(monkeypatch):
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    assert (experiment_name("fashion-mnist"), registered_name("fashion-mnist")) == (
        "cifar10-pipeline-fashion-mnist", "fashion-mnist-classifier")
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "team")
    assert experiment_name("cifar10") == "team"


def test_references_are_told_from_run_directories(tmp_path):
    run_id = "0123456789abcdef0123456789abcdef"
    assert is_reference(run_id) and is_reference(f"runs:/{run_id}") and is_reference("models:/m@champion")
    assert not is_reference("runs/torch-cifar10-20260101-000000")
    (tmp_path / run_id).mkdir()
    assert not is_reference(str(tmp_path / run_id))  # an existing directory is a directory
