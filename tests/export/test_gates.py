"""The gates (``export.gates``): parity refuses a graph that disagrees with the framework, with every failing case
reported; the INT8 gate refuses an accuracy loss, and NaN or infinite logits whatever the accuracy; both raise one
GateError with the report; the golden entry is what onnxruntime reproduces."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from cifar10_pipeline.contract import golden_input
from cifar10_pipeline.export import gates
from cifar10_pipeline.export.gates import (GateError, OrtRunner, Tolerance, accuracy, check_parity, check_quantized,
                                           compare_outputs, infer_chunked)
from cifar10_pipeline.export.quantize import METHOD, logits_step, quantize_int8
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


# The gates' own logic on numpy runners and the tiny ONNX model: every figure, failure line and log line of the
# reports, and each tolerance at its boundary, without training a model.

class Runner:
    """An engine whose logits are the first ``classes`` pixels of each image (scaled), plus ``shift``; it
    records the batch size of every call."""

    def __init__(self, name: str, shift: float | np.ndarray = 0.0, classes: int = 10, output: str = "logits"):
        self.name, self.shift, self.classes, self.output = name, shift, classes, output
        self.batches: list[int] = []

    def infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        images = feeds["image"]
        self.batches.append(len(images))
        logits = images.reshape(len(images), -1)[:, :self.classes].astype(np.float32) / 16 + self.shift
        return {self.output: logits.astype(np.float32)}


def images_and_labels(n: int) -> tuple[np.ndarray, np.ndarray]:
    images = np.random.default_rng(3).integers(0, 256, (n, 4, 4, 1), dtype=np.uint8)
    return images, np.arange(n) % 10


def parity(framework, onnx_runner, n=1200, tol=Tolerance(), outputs=None):
    images, labels = images_and_labels(n)
    lines: list[str] = []
    try:
        report = check_parity(framework, onnx_runner, images, labels, tol, log=lines.append, onnx_outputs=outputs)
    except GateError as e:
        return e, lines
    return report, lines


def test_parity_reports_every_case_in_chunks_with_the_golden_entry():
    framework, onnx_runner = Runner("fw"), Runner("ort", shift=np.float32(2**-14))
    report, lines = parity(framework, onnx_runner)
    images, labels = images_and_labels(1200)
    # the real images in chunks of 500, the random batches, then the golden input through the framework
    assert framework.batches == [500, 500, 200, 1, 64, 2] and onnx_runner.batches == [500, 500, 200, 1, 64]
    cases = ["test images (1200)", "random uint8 batch 1", "random uint8 batch 64"]
    assert [r["case"] for r in report["cases"]] == cases
    assert [r["samples"] for r in report["cases"]] == [1200, 1, 64]
    for row in report["cases"]:
        assert row["logits_max_abs_diff"] == row["logits_mean_abs_diff"] == 2**-14 and row["top1_agreement"] == 1.0
    assert report["framework"] == "fw" and report["onnx"] == "ort" and report["passed"] is True
    assert report["tolerance"] == {"max_abs_diff": 1e-4, "min_top1_agreement": 1.0}
    assert report["max_abs_diff"] == report["mean_abs_diff"] == 2**-14 and report["top1_agreement"] == 1.0
    assert report["test_accuracy"] == float((Runner("x").infer({"image": images})["logits"].argmax(1) == labels).mean())
    golden = golden_input(2, 4, 4, 1, 0)
    assert report["golden"] == {"seed": 0, "batch": 2, "atol": 1e-2,
                                "logits": Runner("x").infer({"image": golden})["logits"].tolist()}
    assert lines == [f"parity {case:>26}: max |diff| 6.10e-05, top-1 agreement 100.00%" for case in cases]


def test_parity_fails_each_case_with_its_lines_and_raises_one_error_with_the_report():
    # a shift of 1 on class 9 beats the real answer on some images: diff and agreement fail in every case
    shift = np.zeros(10, np.float32)
    shift[9] = 1.0
    error, lines = parity(Runner("fw"), Runner("ort", shift=shift))
    assert isinstance(error, GateError) and error.gate == "parity" and not error.report["passed"]
    assert str(error) == "parity failed:\n  - " + "\n  - ".join(error.failures)
    rows = error.report["cases"]
    assert error.failures[:2] == [
        "test images (1200): logits max |diff| 1 > 0.0001",
        f"test images (1200): top-1 agreement {100 * rows[0]['top1_agreement']:.3f}% < 100.000%"]
    assert len(error.failures) in (5, 6) and all(line.endswith("  FAIL") for line in lines[::2])
    assert error.report["max_abs_diff"] == 1.0 and error.report["mean_abs_diff"] == pytest.approx(0.1)
    assert error.report["top1_agreement"] == min(r["top1_agreement"] for r in rows) < 1.0


def test_parity_refuses_other_output_names_shapes_and_non_finite_logits():
    error, lines = parity(Runner("fw"), Runner("ort", output="probs"), n=10)
    assert error.failures[0] == "test images (10): output names ['probs'] != framework's ['logits']"
    assert error.report["cases"][0] == {"case": "test images (10)"}
    assert error.report["max_abs_diff"] == error.report["mean_abs_diff"] == float("inf")
    assert error.report["top1_agreement"] == 0.0 and error.report["test_accuracy"] is not None
    assert lines[0] == f"parity {'test images (10)':>26}: max |diff| None, top-1 agreement 0.00%  FAIL"
    error, _ = parity(Runner("fw"), Runner("ort", classes=5), n=10)
    assert error.failures[0] == "test images (10): logits shape (10, 5) != framework's (10, 10)"
    error, _ = parity(Runner("fw"), Runner("ort", shift=np.float32(np.nan)), n=10)
    assert "test images (10): logits has non-finite values" in error.failures


def test_parity_tolerances_hold_at_their_boundaries():
    # a difference equal to max_abs_diff passes, one step above fails; an agreement equal to the minimum passes
    step = np.float32(2**-10)
    assert parity(Runner("fw"), Runner("ort", shift=step), tol=Tolerance(max_abs_diff=2**-10))[0]["passed"]
    error, _ = parity(Runner("fw"), Runner("ort", shift=step), tol=Tolerance(max_abs_diff=2**-11))
    assert error.failures[0] == "test images (1200): logits max |diff| 0.000977 > 0.000488281"
    shift = np.zeros(10, np.float32)
    shift[9] = 1.0
    error, _ = parity(Runner("fw"), Runner("ort", shift=shift), tol=Tolerance(max_abs_diff=1.0))
    worst = error.report["top1_agreement"]
    report, _ = parity(Runner("fw"), Runner("ort", shift=shift),
                       tol=Tolerance(max_abs_diff=1.0, min_top1_agreement=worst))
    assert report["passed"] and report["tolerance"] == {"max_abs_diff": 1.0, "min_top1_agreement": worst}


def test_parity_uses_the_onnx_outputs_it_is_given_for_the_test_images_only():
    images, _ = images_and_labels(1200)
    given = Runner("ort").infer({"image": images})
    onnx_runner = Runner("ort")
    report, _ = parity(Runner("fw"), onnx_runner, outputs=given)
    assert report["passed"] and onnx_runner.batches == [1, 64]


@pytest.mark.filterwarnings("ignore:Mean of empty slice", "ignore:invalid value encountered")
def test_an_empty_case_has_zero_differences():
    empty = {"logits": np.zeros((0, 10), np.float32)}
    figures, failures = compare_outputs("none", empty, empty, Tolerance())
    assert failures == [] and figures["samples"] == 0
    assert figures["logits_max_abs_diff"] == figures["logits_mean_abs_diff"] == 0.0


def test_the_int8_gate_reports_every_figure_and_holds_the_drop_at_its_boundary():
    model = build_model(seed=0)
    rng = np.random.default_rng(0)
    images = np.clip(rng.integers(0, 256, (300, 1, 1, 3)) + rng.integers(-8, 9, (300, 32, 32, 3)), 0, 255)
    images = images.astype(np.uint8)
    labels = np.arange(300) % 10
    quantized = quantize_int8(model, images[:64])
    float_logits = infer_chunked(OrtRunner(model.SerializeToString()), images)["logits"]
    int8_logits = infer_chunked(OrtRunner(quantized.SerializeToString()), images)["logits"]
    float_acc, int8_acc = accuracy(float_logits, labels), accuracy(int8_logits, labels)
    drop = 100 * (float_acc - int8_acc)
    lines: list[str] = []
    report = check_quantized(float_logits, quantized, images, labels, calibration_size=64, max_accuracy_drop=drop,
                             log=lines.append)  # a drop equal to the allowed one passes
    diff = np.abs(float_logits.astype(np.float64) - int8_logits)
    assert report["method"] == METHOD and report["calibration_images"] == 64 and report["test_images"] == 300
    assert (report["float_test_accuracy"], report["int8_test_accuracy"]) == (float_acc, int8_acc)
    assert report["accuracy_drop_points"] == drop and report["max_accuracy_drop_points"] == drop
    assert report["top1_agreement"] == float((float_logits.argmax(1) == int8_logits.argmax(1)).mean())
    assert report["max_abs_diff"] == float(diff.max()) and report["mean_abs_diff"] == float(diff.mean())
    assert report["onnx"].endswith("(CPUExecutionProvider)") and report["passed"] is True
    step = logits_step(quantized)
    golden = OrtRunner(quantized.SerializeToString()).infer({"image": golden_input(2, 32, 32, 3, 0)})["logits"]
    assert report["golden"] == {"seed": 0, "batch": 2, "atol": max(1e-2, 2 * step), "logits": golden.tolist()}
    assert lines == [f"int8 on 300 test images: accuracy {100 * int8_acc:.2f}% (float {100 * float_acc:.2f}%, drop "
                     f"{drop:.2f} points, at most {drop:g}), top-1 agreement {100 * report['top1_agreement']:.2f}%, "
                     f"max |diff| {report['max_abs_diff']:.3g}"]
    with pytest.raises(GateError) as e:
        check_quantized(float_logits, quantized, images, labels, calibration_size=64, max_accuracy_drop=drop - 0.01,
                        log=lines.append)
    assert e.value.failures == [f"test accuracy {100 * int8_acc:.2f}% is {drop:.2f} points below the float model's "
                                f"{100 * float_acc:.2f}%; at most {drop - 0.01:g} allowed"]
    assert lines[-1].endswith("  FAIL") and e.value.report["passed"] is False


def test_the_random_batches_are_uint8_from_the_seed():
    class Keeping(Runner):
        def infer(self, feeds):
            self.seen = [*getattr(self, "seen", []), feeds["image"]]
            return super().infer(feeds)

    for seed in (0, 5):
        framework = Keeping("fw")
        images, labels = images_and_labels(10)
        kwargs = {} if seed == 0 else {"seed": seed}  # 0 is the default
        check_parity(framework, Runner("ort"), images, labels, log=lambda line: None, **kwargs)
        rng = np.random.default_rng(seed)
        for got, b in zip(framework.seen[1:3], (1, 64)):
            assert got.dtype == np.uint8
            np.testing.assert_array_equal(got, rng.integers(0, 256, (b, 4, 4, 1), dtype=np.uint8))


def test_a_failed_agreement_names_the_minimum_and_a_shape_failure_has_no_figures():
    shift = np.zeros(10, np.float32)
    shift[9] = 1.0
    error, _ = parity(Runner("fw"), Runner("ort", shift=shift),
                      tol=Tolerance(max_abs_diff=1.0, min_top1_agreement=0.99))
    assert all(f.endswith("< 99.000%") for f in error.failures)
    error, _ = parity(Runner("fw"), Runner("ort", classes=5), n=10)
    assert error.report["cases"][0] == {"case": "test images (10)"}


def tiny_int8() -> tuple[np.ndarray, onnx.ModelProto, np.ndarray]:
    model = build_model(seed=0)
    images = np.random.default_rng(1).integers(0, 256, (40, 32, 32, 3), dtype=np.uint8)
    float_logits = infer_chunked(OrtRunner(model.SerializeToString()), images)["logits"]
    return images, quantize_int8(model, images[:16]), float_logits


def test_the_int8_golden_tolerance_is_the_float_ones_without_a_quantization_step(monkeypatch):
    images, quantized, float_logits = tiny_int8()
    monkeypatch.setattr(gates, "logits_step", lambda model: None)
    report = check_quantized(float_logits, quantized, images, float_logits.argmax(1), calibration_size=16,
                             max_accuracy_drop=100, log=lambda line: None)
    assert report["golden"]["atol"] == 1e-2
