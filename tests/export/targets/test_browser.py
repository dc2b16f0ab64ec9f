"""The browser target: ``BrowserRunner`` runs a model on onnxruntime-web's wasm build in headless Chromium and answers
what onnxruntime answers, for a whole data set in chunks and for single images, without touching the network."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

from cifar10_pipeline.export.targets.browser import BrowserRunner
from tests.support.onnx_models import write_model

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("channels", [3, 1])
def test_the_browser_answers_what_onnxruntime_answers(tmp_path, channels):
    model = write_model(tmp_path / "model.onnx", seed=2, height=28, width=28, channels=channels)
    images = np.random.default_rng(0).integers(0, 256, (1234, 28, 28, channels), dtype=np.uint8)
    expected = ort.InferenceSession(str(model)).run(["logits"], {"image": images})[0]
    with BrowserRunner(model, chunk=500) as runner:  # 500 + 500 + 234
        logits = runner.infer({"image": images})["logits"]
        single = runner.infer({"image": images[7:8]})["logits"]
        seconds = runner.latencies(images[:5], 20)  # 20 runs cycling through 5 images
        assert runner.name.startswith("onnxruntime-web 1.") and " wasm (Chromium " in runner.name
        assert runner.blocked == []
    assert logits.dtype == np.float32 and logits.shape == expected.shape
    assert np.abs(logits - expected).max() <= 1e-5
    assert single.shape == (1, 10) and np.abs(single - expected[7:8]).max() <= 1e-5
    assert seconds.shape == (20,) and (seconds >= 0).all() and seconds.sum() > 0  # measured, not made up


def test_the_runner_must_be_opened_first(tmp_path):
    runner = BrowserRunner(write_model(tmp_path / "model.onnx"))
    with pytest.raises(RuntimeError, match="context manager"):
        runner.infer({"image": np.zeros((1, 32, 32, 3), np.uint8)})
