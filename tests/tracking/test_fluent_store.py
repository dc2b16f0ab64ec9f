"""MLflow's fluent API writes its store into os.environ (MLFLOW_TRACKING_URI, MLFLOW_REGISTRY_URI) for child
processes: an export logged in a process must not send that process's later runs, or their torchrun children, into
the export's store."""

from __future__ import annotations

import os

import mlflow
import pytest

from cifar10_pipeline.tracking.models import REGISTRY_URI_ENV, TRACKING_URI_ENV, fluent_store


@pytest.mark.parametrize("before", [None, "sqlite:////elsewhere/mlflow.db"])
def test_the_fluent_store_holds_for_the_block_only(monkeypatch, tmp_path, before):
    for name in (TRACKING_URI_ENV, REGISTRY_URI_ENV):
        if before is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, before)
    mlflow.set_tracking_uri(before)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with fluent_store(uri):
        assert os.environ[TRACKING_URI_ENV] == os.environ[REGISTRY_URI_ENV] == uri == mlflow.get_tracking_uri()
    assert os.environ.get(TRACKING_URI_ENV) == os.environ.get(REGISTRY_URI_ENV) == before
    if before is not None:
        assert mlflow.get_tracking_uri() == before
    mlflow.set_tracking_uri(None)


def test_the_store_is_put_back_when_the_block_fails(monkeypatch, tmp_path):
    monkeypatch.delenv(TRACKING_URI_ENV, raising=False)
    monkeypatch.delenv(REGISTRY_URI_ENV, raising=False)
    with pytest.raises(RuntimeError), fluent_store(f"sqlite:///{tmp_path / 'mlflow.db'}"):
        raise RuntimeError("the store refused")
    assert TRACKING_URI_ENV not in os.environ and REGISTRY_URI_ENV not in os.environ
