"""Parity: prove that onnxruntime gives the framework's answers before a model file is written.

Numpy is the neutral format: every engine is a runner with ``infer(dict[str, ndarray]) -> dict[str, ndarray]``
(the framework adapters live in the framework exporters). Comparison follows a fixed order: output names,
then shapes, then values, one line per output with its max difference; every failure is collected first,
then one ParityError carries them all.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import onnxruntime as ort

from cifar10_pipeline.contract import GOLDEN_ATOL, GOLDEN_BATCH, GOLDEN_SEED, INPUT_NAME, OUTPUT_NAME, golden_input

RANDOM_BATCHES = (1, 64)  # random uint8 inputs at these batch sizes, beside the real test images
CHUNK = 500  # images per inference call on real data: bounds memory on a 10,000-image test set


class Runner(Protocol):
    name: str

    def infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...


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


class ParityError(RuntimeError):
    """onnxruntime disagrees with the framework; ``report`` holds every figure."""

    def __init__(self, failures: list[str], report: dict[str, Any]):
        self.failures = failures
        self.report = report
        super().__init__("parity failed:\n  - " + "\n  - ".join(failures))


def _infer_chunked(runner: Runner, images: np.ndarray) -> dict[str, np.ndarray]:
    parts = [runner.infer({INPUT_NAME: images[i:i + CHUNK]}) for i in range(0, len(images), CHUNK)]
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


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
                 tol: Tolerance = Tolerance(), seed: int = 0, log=print) -> dict[str, Any]:
    """Run both engines on the real test images and random batches; return the report or raise ParityError.

    The report also carries the framework's test accuracy and its logits on the contract's golden input,
    which the service uses to self-test a model file.
    """
    h, w, c = test_images.shape[1:]
    rng = np.random.default_rng(seed)
    cases = {f"test images ({len(test_images)})": test_images}
    cases.update({f"random uint8 batch {b}": rng.integers(0, 256, (b, h, w, c), dtype=np.uint8) for b in RANDOM_BATCHES})

    rows, failures, test_accuracy = [], [], None
    for case, images in cases.items():
        ref, got = _infer_chunked(framework, images), _infer_chunked(onnx_runner, images)
        figures, case_failures = compare_outputs(case, ref, got, tol)
        rows.append(figures)
        failures += case_failures
        if test_accuracy is None:
            test_accuracy = float((ref[OUTPUT_NAME].argmax(1) == test_labels).mean())
        diff = figures.get(f"{OUTPUT_NAME}_max_abs_diff")
        log(f"parity {case:>26}: max |diff| {diff if diff is None else f'{diff:.2e}'}, "
            f"top-1 agreement {100 * figures.get('top1_agreement', 0):.2f}%{'  FAIL' if case_failures else ''}")

    golden = golden_input(GOLDEN_BATCH, h, w, c, GOLDEN_SEED)
    report = {
        "framework": framework.name,
        "onnx": onnx_runner.name,
        "tolerance": {"max_abs_diff": tol.max_abs_diff, "min_top1_agreement": tol.min_top1_agreement},
        "cases": rows,
        "max_abs_diff": max((r.get(f"{OUTPUT_NAME}_max_abs_diff", float("inf")) for r in rows)),
        "mean_abs_diff": float(np.mean([r.get(f"{OUTPUT_NAME}_mean_abs_diff", float("inf")) for r in rows])),
        "top1_agreement": min(r.get("top1_agreement", 0.0) for r in rows),
        "test_accuracy": test_accuracy,
        "golden": {"seed": GOLDEN_SEED, "batch": GOLDEN_BATCH, "atol": GOLDEN_ATOL,
                   "logits": framework.infer({INPUT_NAME: golden})[OUTPUT_NAME].tolist()},
        "passed": not failures,
    }
    if failures:
        raise ParityError(failures, report)
    return report
