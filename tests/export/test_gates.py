"""The gates (``export.gates``): parity refuses a graph that disagrees with the framework, with every failing case
reported; the INT8 gate refuses an accuracy loss, and NaN or infinite logits whatever the accuracy; both raise one
GateError with the report; the golden entry is what onnxruntime reproduces."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

from cifar10_pipeline.contract import golden_input
from cifar10_pipeline.export.gates import GateError, OrtRunner, Tolerance, check_parity, check_quantized, infer_chunked
from cifar10_pipeline.export.quantize import quantize_int8
from cifar10_pipeline.training.datasets import load_dataset
from tests.support.contract import check_contract
from tests.support.onnx_edits import after_logits, tampered
from tests.support.onnx_models import build_model, reference_logits


def test_parity_fails_on_a_tampered_graph_and_reports_every_case(converted):
    runner, model, _ = converted
    ds = load_dataset("synthetic")
    with pytest.raises(GateError) as e:
        check_parity(runner, OrtRunner(tampered(model).SerializeToString()), ds.test_images[:1000],
                     ds.test_labels[:1000], log=lambda line: None)
    assert e.value.gate == "parity" and str(e.value).startswith("parity failed:\n  - ")
    assert len(e.value.failures) >= 3  # real images and both random batches each fail
    assert all("max |diff|" in f or "top-1 agreement" in f for f in e.value.failures)
    assert not e.value.report["passed"] and e.value.report["max_abs_diff"] == pytest.approx(5, abs=1e-3)


def test_tolerances_are_configurable(converted):
    runner, model, _ = converted
    ds = load_dataset("synthetic")
    with pytest.raises(GateError, match="max \\|diff\\|"):
        check_parity(runner, OrtRunner(model.SerializeToString()), ds.test_images[:1000], ds.test_labels[:1000],
                     Tolerance(max_abs_diff=0.0), log=lambda line: None)


def test_parity_compares_the_onnxruntime_outputs_it_is_given_on_the_test_images(converted):
    # the export hands parity onnxruntime's logits on the test images (shared with the INT8 gate): parity holds
    # those to the framework, and runs onnxruntime itself only on the random batches
    runner, model, _ = converted
    ds = load_dataset("synthetic")
    images, labels = ds.test_images[:1000], ds.test_labels[:1000]
    onnx_runner = OrtRunner(model.SerializeToString())
    outputs = infer_chunked(onnx_runner, images)
    report = check_parity(runner, onnx_runner, images, labels, log=lambda line: None, onnx_outputs=outputs)
    assert report["passed"]
    shifted = {"logits": outputs["logits"] + 5 * np.eye(10, dtype=np.float32)[3]}
    with pytest.raises(GateError) as e:
        check_parity(runner, onnx_runner, images, labels, log=lambda line: None, onnx_outputs=shifted)
    assert [f.split(":")[0] for f in e.value.failures] == ["test images (1000)"] * len(e.value.failures)


def _int8_case(n: int):
    """A tiny float model, ``n`` noisy solid-colour images labelled by it, its logits on them, and its INT8 file
    calibrated on the first 64."""
    model = build_model(seed=0)
    rng = np.random.default_rng(0)
    noisy = rng.integers(0, 256, (n, 1, 1, 3)) + rng.integers(-8, 9, (n, 32, 32, 3))
    images = np.clip(noisy, 0, 255).astype(np.uint8)
    float_logits = infer_chunked(OrtRunner(model.SerializeToString()), images)["logits"]
    return images, reference_logits(images, 0).argmax(1), float_logits, quantize_int8(model, images[:64])


def test_the_int8_gate_refuses_an_accuracy_loss_with_the_same_error_and_its_report():
    images, labels, float_logits, quantized = _int8_case(256)
    with pytest.raises(GateError) as e:  # a gain of 100 points demanded: no model passes
        check_quantized(float_logits, quantized, images, labels, calibration_size=64, max_accuracy_drop=-100,
                        log=lambda line: None)
    assert e.value.gate == "quantization gate" and str(e.value).startswith("quantization gate failed:\n  - ")
    assert len(e.value.failures) == 1 and "at most -100 allowed" in e.value.failures[0]
    report = e.value.report
    assert not report["passed"] and report["test_images"] == 256 and report["calibration_images"] == 64
    assert report["float_test_accuracy"] == pytest.approx((float_logits.argmax(1) == labels).mean())
    assert set(report["golden"]) == {"seed", "batch", "atol", "logits"} and report["golden"]["atol"] >= 1e-2


NON_FINITE = {
    # name: the op and operand applied to the INT8 file's logits: one class's logit made non-finite for every image
    "nan": ("Add", np.where(np.arange(10) == 3, np.nan, 0).astype(np.float32)),
    "inf": ("Mul", np.where(np.arange(10) == 3, np.inf, 1).astype(np.float32)),  # +-inf by the sign, NaN at 0
}


@pytest.mark.parametrize("case", NON_FINITE)
def test_the_int8_gate_refuses_non_finite_logits_whatever_the_accuracy(case):
    images, labels, float_logits, quantized = _int8_case(128)
    broken = after_logits(quantized, *NON_FINITE[case])
    with pytest.raises(GateError) as e:  # any accuracy loss allowed: only the non-finite logits can fail it
        check_quantized(float_logits, broken, images, labels, calibration_size=64, max_accuracy_drop=100,
                        log=lambda line: None)
    assert e.value.failures == ["the quantized model's logits are not all finite: 128 of 128 test images "
                                "give NaN or infinity"]
    assert not e.value.report["passed"] and e.value.report["non_finite_images"] == 128


def test_golden_logits_in_the_report_reproduce_with_onnxruntime(exported):
    info = check_contract(exported)
    golden = info.metadata["parity"]["golden"]
    session = ort.InferenceSession(str(exported), providers=["CPUExecutionProvider"])
    got = session.run(["logits"], {"image": golden_input(golden["batch"], 32, 32, 3, seed=golden["seed"])})[0]
    np.testing.assert_allclose(got, np.array(golden["logits"]), atol=1e-4)
