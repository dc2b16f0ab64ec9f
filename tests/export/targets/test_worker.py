"""A runner in another environment (``remote.WorkerRunner`` and ``worker``), here with this environment's own
interpreter: the logits it sends back are onnxruntime's, it times batch-1 calls itself, and a refused request
or a dead worker raises with the reason."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from cifar10_pipeline.export.gates import OrtRunner
from cifar10_pipeline.export.targets.remote import WorkerError, WorkerRunner

PYTHON = Path(sys.executable)


def test_the_worker_answers_as_onnxruntime_here(model):
    images = np.random.default_rng(1).integers(0, 256, (7, 32, 32, 3), dtype=np.uint8)
    expected = OrtRunner(model.read_bytes()).infer({"image": images})["logits"]
    with WorkerRunner(PYTHON, model, ["CPUExecutionProvider"]) as runner:
        assert runner.providers == ["CPUExecutionProvider"] and "CPUExecutionProvider" in runner.name
        logits = runner.infer({"image": images})["logits"]
        assert logits.dtype == np.float32
        np.testing.assert_array_equal(logits, expected)
        seconds = runner.latencies(images, 5)
        assert seconds.shape == (5,) and (seconds > 0).all()
        # a request it cannot run is refused with onnxruntime's reason, and the worker goes on
        with pytest.raises(WorkerError, match="image"):
            runner.infer({"image": images[..., :1]})
        np.testing.assert_array_equal(runner.infer({"image": images[:2]})["logits"], expected[:2])
    assert runner.process.returncode == 0


def test_a_worker_that_cannot_start_says_why(tmp_path):
    with pytest.raises(WorkerError, match="exited .*No such file|NoSuchFile"):
        WorkerRunner(PYTHON, tmp_path / "missing.onnx", ["CPUExecutionProvider"])
