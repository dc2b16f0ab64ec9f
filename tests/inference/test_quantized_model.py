"""The service serves an INT8 file unchanged: /info says it is quantized, its own golden logits self-test it
within two quantization steps of its logits, and a tampered INT8 file is refused."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from cifar10_pipeline.contract import GOLDEN_ATOL, GOLDEN_QUANTIZED_STEPS, ContractError
from cifar10_pipeline.export.quantize import logits_step
from cifar10_pipeline.inference.runtime import load_session
from tests.support.api import post_files, sha256
from tests.support.images import COLOUR, png
from tests.support.onnx_edits import after_logits, tampered
from tests.support.onnx_models import write_quantized_model
from tests.support.reference import all_probabilities, expected_probabilities


@pytest.fixture(scope="module")
def quantized_path(tmp_path_factory):
    return write_quantized_model(tmp_path_factory.mktemp("int8") / "model.int8.onnx", seed=0)


def test_an_int8_file_is_served_and_info_says_it_is_quantized(make_app, quantized_path):
    client = make_app(model_path=quantized_path).test_client()
    info = client.get("/info").json
    assert info["model_id"] == sha256(quantized_path) and info["quantized"] is True
    report = info["metadata"]["quantization"]
    assert report["method"]["format"] == "QDQ" and report["calibration_images"] == 256
    assert info["metadata"]["test_accuracy"] == report["int8_test_accuracy"]
    assert info["self_test"]["reference"] == "quantization" and info["self_test"]["compared_to_parity"]
    assert info["self_test"]["max_abs_diff"] <= info["self_test"]["atol"] == report["golden"]["atol"]
    ops = {node.op_type for node in onnx.load(str(quantized_path)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops  # really the INT8 graph, not the float one
    answer = post_files(client, [("a.png", png())], "?top_k=10").json
    got, want = all_probabilities(answer["predictions"][0]), expected_probabilities(COLOUR, seed=0)
    assert got.argmax() == want.argmax()
    np.testing.assert_allclose(got, want, atol=0.05)  # the float model's answer, within INT8 rounding


def test_a_float_file_is_not_reported_quantized(client):
    assert client.get("/info").json["quantized"] is False


def test_a_tampered_int8_file_is_refused_by_its_golden_self_test(make_app, quantized_path, tmp_path):
    model = onnx.load(str(quantized_path))
    path = tmp_path / "tampered.int8.onnx"
    onnx.save(tampered(model), path)  # its metadata, golden logits included, left as they were
    response = make_app(model_path=path).test_client().get("/readyz")
    assert response.status_code == 503
    error = response.json["error"]
    assert "golden self-test" in error and "differ from the quantization report" in error
    with pytest.raises(ContractError, match="golden self-test"):
        load_session(path, ["CPUExecutionProvider"], 1)


@pytest.mark.parametrize("steps, ready", [(1, True), (3, False)])
def test_an_int8_file_is_held_to_two_steps_of_its_logits_quantization(make_app, tmp_path, steps, ready):
    # the export sets an INT8 file's golden atol to GOLDEN_QUANTIZED_STEPS (2) steps of its logits' scale: one step
    # off is another CPU's rounding and is served, three steps off is refused
    path = write_quantized_model(tmp_path / "model.int8.onnx", seed=3)
    model = onnx.load(path)
    step = logits_step(model)
    assert step and GOLDEN_QUANTIZED_STEPS * step > GOLDEN_ATOL  # the steps decide here, not the floor
    onnx.save(after_logits(model, "Add", np.where(np.arange(10) == 4, steps * step, 0).astype(np.float32)), path)
    response = make_app(model_path=path).test_client().get("/readyz")
    assert (response.status_code == 200) == ready, response.json
