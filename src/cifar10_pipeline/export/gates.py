"""The gates an exported model passes before any file is written, with one error type and one report shape.

Parity: onnxruntime gives the framework's answers on the real test images and on random uint8 batches. The
comparison follows a fixed order: output names, then shapes, then values, one line per case with its max
difference. INT8: the quantized model, run on the whole test set, loses at most ``max_accuracy_drop`` points of
test accuracy against the float model. Each gate collects every failure first, then one GateError carries them
all with the report. Each report holds a golden entry (``golden_entry``): the logits the service's self-test
compares onnxruntime's with when it loads the file (``contract.golden_reference``).

Every engine is a runner (``export.converter.Runner``); real images go through it in chunks (``infer_chunked``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort

from cifar10_pipeline.contract import (GOLDEN_ATOL, GOLDEN_BATCH, GOLDEN_QUANTIZED_STEPS, GOLDEN_SEED, INPUT_NAME,
                                       OUTPUT_NAME, golden_input)
from cifar10_pipeline.export.converter import Runner
from cifar10_pipeline.export.quantize import METHOD, logits_step

MIN_PARITY_IMAGES = 1000  # real test images parity needs, when the test set has them
RANDOM_BATCHES = (1, 64)  # random uint8 inputs at these batch sizes, beside the real test images
CHUNK = 500  # images per inference call on real data: bounds memory on a 10,000-image test set
MAX_ACCURACY_DROP = 0.3  # percentage points of test accuracy the INT8 model may lose


class OrtRunner:
    """onnxruntime on the CPU provider, from a serialized model held in memory."""

    def __init__(self, model_bytes: bytes):
        self.name = f"onnxruntime {ort.__version__} (CPUExecutionProvider)"
        self.session = ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])

    def infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        names = [o.name for o in self.session.get_outputs()]
        return dict(zip(names, self.session.run(names, feeds)))


@dataclass(frozen=True)
class Tolerance:
    max_abs_diff: float = 1e-4  # on logits
    min_top1_agreement: float = 1.0  # fraction of inputs whose argmax agrees


class GateError(RuntimeError):
    """A gate refused the model: ``failures`` (one line each) and ``report`` (every figure) say why."""

    def __init__(self, gate: str, failures: list[str], report: dict[str, Any]):
        self.gate = gate
        self.failures = failures
        self.report = report
        super().__init__(f"{gate} failed:\n  - " + "\n  - ".join(failures))


def infer_chunked(runner: Runner, images: np.ndarray) -> dict[str, np.ndarray]:
    """``runner``'s outputs on uint8 ``images`` [N, H, W, C], inferred CHUNK images at a time."""
    parts = [runner.infer({INPUT_NAME: images[i:i + CHUNK]}) for i in range(0, len(images), CHUNK)]
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    """The fraction of rows of ``logits`` [N, classes] whose argmax is the row's label in ``labels`` [N]."""
    return float((logits.argmax(1) == labels).mean())


def golden_entry(runner: Runner, image_shape: tuple[int, int, int], atol: float = GOLDEN_ATOL) -> dict[str, Any]:
    """The report's ``golden`` entry: ``runner``'s logits on the contract's golden input of ``image_shape``
    (H, W, C), with the seed, batch and tolerance the service's self-test reproduces them with."""
    image = golden_input(GOLDEN_BATCH, *image_shape, GOLDEN_SEED)
    return {"seed": GOLDEN_SEED, "batch": GOLDEN_BATCH, "atol": atol,
            "logits": runner.infer({INPUT_NAME: image})[OUTPUT_NAME].tolist()}


def compare_outputs(case: str, ref: dict[str, np.ndarray], got: dict[str, np.ndarray], tol: Tolerance) -> tuple[dict, list[str]]:
    """Names, then shapes, then values. Returns the case's figures and its failures."""
    failures: list[str] = []
    if sorted(ref) != sorted(got):
        return {"case": case}, [f"{case}: output names {sorted(got)} != framework's {sorted(ref)}"]
    shapes = {k: (ref[k].shape, got[k].shape) for k in ref}
    failures += [f"{case}: {k} shape {g} != framework's {r}" for k, (r, g) in shapes.items() if r != g]
    if failures:
        return {"case": case}, failures
    figures: dict[str, Any] = {"case": case, "samples": int(len(ref[OUTPUT_NAME]))}
    for k in ref:
        diff = np.abs(ref[k].astype(np.float64) - got[k].astype(np.float64))
        figures[f"{k}_max_abs_diff"] = float(diff.max()) if diff.size else 0.0
        figures[f"{k}_mean_abs_diff"] = float(diff.mean()) if diff.size else 0.0
        if not np.isfinite(got[k]).all():
            failures.append(f"{case}: {k} has non-finite values")
        if figures[f"{k}_max_abs_diff"] > tol.max_abs_diff:
            failures.append(f"{case}: {k} max |diff| {figures[f'{k}_max_abs_diff']:.3g} > {tol.max_abs_diff:g}")
    agreement = float((ref[OUTPUT_NAME].argmax(1) == got[OUTPUT_NAME].argmax(1)).mean())
    figures["top1_agreement"] = agreement
    if agreement < tol.min_top1_agreement:
        failures.append(f"{case}: top-1 agreement {100 * agreement:.3f}% < {100 * tol.min_top1_agreement:.3f}%")
    return figures, failures


def check_parity(framework: Runner, onnx_runner: Runner, test_images: np.ndarray, test_labels: np.ndarray,
                 tol: Tolerance = Tolerance(), seed: int = 0, log: Callable[[str], None] = print,
                 onnx_outputs: dict[str, np.ndarray] | None = None) -> dict[str, Any]:
    """Run both engines on the real test images and random batches; return the report or raise GateError.

    ``onnx_outputs``: onnxruntime's outputs on ``test_images`` when the caller has them already (the export
    shares them with the INT8 gate). The report also carries the framework's test accuracy and its golden
    entry, which the service uses to self-test a model file.
    """
    h, w, c = test_images.shape[1:]
    rng = np.random.default_rng(seed)
    test_case = f"test images ({len(test_images)})"
    cases = {test_case: test_images}
    cases.update({f"random uint8 batch {b}": rng.integers(0, 256, (b, h, w, c), dtype=np.uint8) for b in RANDOM_BATCHES})
    known = {test_case: onnx_outputs} if onnx_outputs is not None else {}

    rows, failures, test_accuracy = [], [], None
    for case, images in cases.items():
        ref = infer_chunked(framework, images)
        got = known[case] if case in known else infer_chunked(onnx_runner, images)
        figures, case_failures = compare_outputs(case, ref, got, tol)
        rows.append(figures)
        failures += case_failures
        if case == test_case:
            test_accuracy = accuracy(ref[OUTPUT_NAME], test_labels)
        diff = figures.get(f"{OUTPUT_NAME}_max_abs_diff")
        log(f"parity {case:>26}: max |diff| {diff if diff is None else f'{diff:.2e}'}, "
            f"top-1 agreement {100 * figures.get('top1_agreement', 0):.2f}%{'  FAIL' if case_failures else ''}")

    report = {
        "framework": framework.name,
        "onnx": onnx_runner.name,
        "tolerance": {"max_abs_diff": tol.max_abs_diff, "min_top1_agreement": tol.min_top1_agreement},
        "cases": rows,
        "max_abs_diff": max((r.get(f"{OUTPUT_NAME}_max_abs_diff", float("inf")) for r in rows)),
        "mean_abs_diff": float(np.mean([r.get(f"{OUTPUT_NAME}_mean_abs_diff", float("inf")) for r in rows])),
        "top1_agreement": min(r.get("top1_agreement", 0.0) for r in rows),
        "test_accuracy": test_accuracy,
        "golden": golden_entry(framework, (h, w, c)),
        "passed": not failures,
    }
    if failures:
        raise GateError("parity", failures, report)
    return report


def int8_gate_failures(float_accuracy: float, int8_logits: np.ndarray, test_labels: np.ndarray,
                       max_accuracy_drop: float) -> list[str]:
    """The INT8 accuracy gate's verdict, one line per failure ([] when it passes): the quantized model's logits
    ``int8_logits`` [N, classes] on the test images with labels ``test_labels`` [N] are finite, and their accuracy
    is at most ``max_accuracy_drop`` percentage points below ``float_accuracy`` (a fraction). The export gates a
    new file with it, and ``cifar10-targets`` an exported one."""
    failures = []
    int8_accuracy = accuracy(int8_logits, test_labels)
    drop = 100 * (float_accuracy - int8_accuracy)
    non_finite = int((~np.isfinite(int8_logits)).any(axis=1).sum())  # images with a NaN or infinite logit
    if non_finite:
        failures.append(f"the quantized model's logits are not all finite: {non_finite} of {len(int8_logits)} test "
                        "images give NaN or infinity")
    if drop > max_accuracy_drop:
        failures.append(f"test accuracy {100 * int8_accuracy:.2f}% is {drop:.2f} points below the float model's "
                        f"{100 * float_accuracy:.2f}%; at most {max_accuracy_drop:g} allowed")
    return failures


def check_quantized(float_logits: np.ndarray, quantized: onnx.ModelProto, test_images: np.ndarray,
                    test_labels: np.ndarray, *, calibration_size: int, max_accuracy_drop: float = MAX_ACCURACY_DROP,
                    log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run the ``quantized`` model on the test images and hold it to the float model's onnxruntime logits on
    them (``float_logits`` [N, classes]); return the ``quantization`` report or raise GateError.

    The report holds the method, calibration size, both test accuracies, top-1 agreement and max |logit
    difference| with the float model, and the quantized model's own golden entry (onnxruntime's logits: the
    service's self-test reference for this file), its tolerance a few steps of the logits' quantization scale.
    """
    int8_runner = OrtRunner(quantized.SerializeToString())
    got = infer_chunked(int8_runner, test_images)[OUTPUT_NAME]
    float_accuracy, int8_accuracy = accuracy(float_logits, test_labels), accuracy(got, test_labels)
    drop = 100 * (float_accuracy - int8_accuracy)
    diff = np.abs(float_logits.astype(np.float64) - got)
    step = logits_step(quantized)
    non_finite = int((~np.isfinite(got)).any(axis=1).sum())  # images with a NaN or infinite logit
    report = {
        "method": METHOD,
        "calibration_images": calibration_size,
        "test_images": len(test_images),
        "float_test_accuracy": float_accuracy,
        "int8_test_accuracy": int8_accuracy,
        "accuracy_drop_points": drop,
        "max_accuracy_drop_points": max_accuracy_drop,
        "top1_agreement": float((float_logits.argmax(1) == got.argmax(1)).mean()),
        "max_abs_diff": float(diff.max()),
        "mean_abs_diff": float(diff.mean()),
        "non_finite_images": non_finite,
        "onnx": int8_runner.name,
        "golden": golden_entry(int8_runner, test_images.shape[1:],
                               max(GOLDEN_ATOL, GOLDEN_QUANTIZED_STEPS * step) if step else GOLDEN_ATOL),
    }
    failures = int8_gate_failures(float_accuracy, got, test_labels, max_accuracy_drop)
    report["passed"] = not failures
    log(f"int8 on {len(test_images)} test images: accuracy {100 * int8_accuracy:.2f}% (float "
        f"{100 * float_accuracy:.2f}%, drop {drop:.2f} points, at most {max_accuracy_drop:g}), top-1 agreement "
        f"{100 * report['top1_agreement']:.2f}%, max |diff| {report['max_abs_diff']:.3g}"
        f"{'  FAIL' if failures else ''}")
    if failures:
        raise GateError("quantization gate", failures, report)
    return report
