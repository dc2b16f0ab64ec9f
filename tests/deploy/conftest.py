"""Fixtures of the replica and image tests: two small models, the serving images, and a running stack of replicas
behind HAProxy (podman, root, the images .ci/containers.sh built; the tests that use it are marked ``containers``
and run by `make test-images`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from cifar10_pipeline.deploy.replicas import podman, stack
from tests.support.images import png
from tests.support.onnx_models import write_model


@dataclass(frozen=True)
class ServingImage:
    tag: str
    onnxruntime: tuple[str, str]  # the constraints file and distribution that pin its onnxruntime
    gpu: bool  # built on onnxruntime-gpu: asks for CUDA first


IMAGES = {
    "cpu": ServingImage(podman.CPU_IMAGE, ("constraints.txt", "onnxruntime"), gpu=False),
    # the tag .ci/containers.sh gives the GPU image; this machine has no GPU, so it runs on its CPU fallback
    "gpu": ServingImage("localhost/cifar10-serve-gpu:ci", ("constraints-gpu.txt", "onnxruntime-gpu"), gpu=True),
}


@pytest.fixture(scope="module", params=list(IMAGES.values()), ids=list(IMAGES))
def image(request) -> ServingImage:
    """Each serving image in turn: the tests that take it run on both."""
    return request.param


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
def running(image, old_model, tmp_path):
    """Two replicas of ``image`` serving ``old_model`` behind HAProxy, taken down after the test whatever happened."""
    state_dir = tmp_path / "stack"
    up = stack.up(old_model, replicas=2, port=stack.free_base_port(2), state_dir=state_dir, image=image.tag,
                  log=lambda _: None)
    try:
        yield up
    finally:
        stack.down(state_dir, log=lambda _: None)
