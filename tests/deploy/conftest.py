"""Fixtures of the replica tests: two small models and a running stack of replicas behind HAProxy (podman, root,
the CPU image from `make image`; the tests that use it are marked ``containers`` and run by `make test-images`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cifar10_pipeline.deploy.replicas import stack
from tests.support.images import png
from tests.support.onnx_models import write_model


@pytest.fixture
def old_model(tmp_path) -> Path:
    return write_model(tmp_path / "old.onnx", seed=0)


@pytest.fixture
def new_model(tmp_path) -> Path:
    return write_model(tmp_path / "new.onnx", seed=1)


@pytest.fixture
def upload(tmp_path) -> Path:
    path = tmp_path / "upload.png"
    path.write_bytes(png())
    return path


@pytest.fixture
def running(old_model, tmp_path):
    """Two replicas serving ``old_model`` behind HAProxy, taken down after the test whatever happened."""
    state_dir = tmp_path / "stack"
    up = stack.up(old_model, replicas=2, port=stack.free_base_port(2), state_dir=state_dir, log=lambda _: None)
    try:
        yield up
    finally:
        stack.down(state_dir, log=lambda _: None)
