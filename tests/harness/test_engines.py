"""``harness.engines``: what is timed (batch sizes, calls, warm-up left out) and the ONNX file read as a forward."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from cifar10_pipeline.contract import INPUT_NAME, OUTPUT_NAME
from harness import engines


def test_time_forward_times_batch_1_and_256_after_untimed_warm_up_calls(monkeypatch):
    now = [0.0]
    monkeypatch.setattr(engines, "perf_counter", lambda: now[0])
    calls = []

    def forward(images):  # a model taking 2 ms per image-1 batch and 100 ms per 256-image batch on a fake clock
        calls.append((images.shape, images.dtype))
        now[0] += 0.002 if len(images) == 1 else 0.100

    result = engines.time_forward(forward, (28, 28, 1), latency_runs=7, throughput_runs=4)
    assert result["batch1_p50_ms"] == pytest.approx(2.0)
    assert result["batch256_images_per_s"] == pytest.approx(256 / 0.100)
    warm = engines.WARMUP_CALLS
    assert calls.count(((1, 28, 28, 1), np.uint8)) == warm + 7
    assert calls.count(((256, 28, 28, 1), np.uint8)) == warm + 4 and len(calls) == 2 * warm + 11


@pytest.fixture
def flatten_model(tmp_path):
    """image uint8 [N, 5, 6, 1] -> logits: the pixels as float32, flattened [N, 30]."""
    graph = helper.make_graph(
        [helper.make_node("Cast", [INPUT_NAME], ["pixels"], to=TensorProto.FLOAT),
         helper.make_node("Flatten", ["pixels"], [OUTPUT_NAME], axis=1)],
        "flatten", [helper.make_tensor_value_info(INPUT_NAME, TensorProto.UINT8, ["N", 5, 6, 1])],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["N", 30])])
    path = tmp_path / "model.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def test_onnx_forward_runs_the_file_and_reads_its_image_shape(flatten_model):
    forward, shape = engines.onnx_forward(flatten_model)
    assert shape == (5, 6, 1)
    images = np.random.default_rng(0).integers(0, 256, (3, 5, 6, 1), dtype=np.uint8)
    np.testing.assert_array_equal(forward(images), images.reshape(3, 30).astype(np.float32))


@pytest.mark.filterwarnings("ignore:Specified provider:UserWarning")  # onnxruntime's, on the way to the fallback
def test_onnx_forward_refuses_a_session_that_fell_back_to_another_provider(flatten_model):
    # a provider onnxruntime knows but this build lacks: the session would quietly run on the CPU
    missing = next(p for p in ort.get_all_providers() if p not in ort.get_available_providers())
    with pytest.raises(RuntimeError, match=rf"runs .*model\.onnx on \['CPUExecutionProvider'\], not {missing}"):
        engines.onnx_forward(flatten_model, missing)
