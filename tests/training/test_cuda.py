"""On an NVIDIA GPU (marker ``gpu``: `make test-gpu` runs these, `make test` deselects them): each framework's trainer
asked for ``--device cuda`` trains on the GPU, in bfloat16 (what ``--precision auto`` picks there), learns, and its
run names the device. On a machine without one, the trainer refuses ``cuda`` (DeviceError): the test fails saying
so."""

from __future__ import annotations

import re

import pytest

from cifar10_pipeline.training.loop import train
from tests.support.runs import tiny_config

pytestmark = pytest.mark.gpu


def test_a_tiny_run_trains_on_the_gpu_learns_and_its_run_names_it(framework, tmp_path):
    result = train(tiny_config(tmp_path, device="cuda"), framework.name)
    info = result.run.info
    # "cuda" or "cuda:0" from PyTorch, "/GPU:0" from TensorFlow: a device the trainer placed the model and data on
    assert re.search(r"cuda|gpu", info["device"], re.I), info["device"]
    assert info["precision"] == "bfloat16"
    assert result.accuracy > 0.5, f"accuracy {result.accuracy:.3f} is not well above chance (0.1)"
