"""INT8: an exported float model -> onnxruntime's static quantizer -> the accuracy gate, the INT8 twin of parity.

The recipe is onnxruntime's for CPUs with VNNI: the graph pre-processed (``quant_pre_process``), then
``quantize_static`` in the QDQ format with per-channel QInt8 weights, QUInt8 activations, no reduced range, and
MinMax ranges calibrated on a few hundred training images. The stem (the preprocessing nodes and the first
convolution, which reads 1-3 channels) stays float: an INT8 convolution over so few input channels is slower
than the float one on onnxruntime's CPU kernels, and its input would be quantized twice (pixels, then the
normalised image). Figures: ``python -m benchmarks.quantize`` (BENCHMARKS.md).

The gate runs both files on the whole test set: the INT8 file may lose at most ``max_accuracy_drop`` points
of accuracy; on a fail a QuantizationError carries every figure and nothing is stamped.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process

from cifar10_pipeline.contract import (GOLDEN_ATOL, GOLDEN_BATCH, GOLDEN_QUANTIZED_STEPS, GOLDEN_SEED, INPUT_NAME, OUTPUT_NAME,
                      golden_input)
from cifar10_pipeline.export.parity import CHUNK, OrtRunner

QUANTIZE_CHOICES = ("int8",)
CALIBRATION_IMAGES = 512
MAX_ACCURACY_DROP = 0.3  # percentage points on the test set
CALIBRATION_BATCH = 64
METHOD = {
    "tool": "onnxruntime.quantization.quantize_static",
    "format": "QDQ",
    "weights": "QInt8, per channel",
    "activations": "QUInt8",
    "reduce_range": False,
    "calibration": "MinMax",
    "float_nodes": "the stem: preprocessing and the first convolution",
}


class QuantizationError(RuntimeError):
    """The quantized model failed the accuracy gate; ``report`` holds every figure."""

    def __init__(self, failures: list[str], report: dict[str, Any]):
        self.failures = failures
        self.report = report
        super().__init__("quantization gate failed:\n  - " + "\n  - ".join(failures))


class CalibrationImages(CalibrationDataReader):
    """uint8 [N, H, W, C] images fed to the calibration session in batches."""

    def __init__(self, images: np.ndarray):
        self._batches = iter([{INPUT_NAME: images[i:i + CALIBRATION_BATCH]}
                              for i in range(0, len(images), CALIBRATION_BATCH)])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._batches, None)


def quantized_path(path: Path, kind: str = "int8") -> Path:
    """``models/model.onnx`` -> ``models/model.int8.onnx``: the quantized file beside the float one."""
    return path.with_name(f"{path.stem}.{kind}{path.suffix}")


def stem_nodes(model: onnx.ModelProto) -> list[str]:
    """Names of the stem's nodes: those computed from the graph input without passing a Conv (preprocessing,
    flip TTA's mirror and concatenation), and the Convs that read them (one, or one per TTA branch when the
    exporter runs the body twice). A graph without convolutions has no stem: all of it is quantized."""
    graph = model.graph
    if not any(node.op_type == "Conv" for node in graph.node):
        return []
    before_conv = {i.name for i in graph.input} | {i.name for i in graph.initializer} | {""}  # "": no input
    names = []
    for node in graph.node:  # topological order
        if all(name in before_conv for name in node.input):
            names.append(node.name)
            if node.op_type != "Conv":
                before_conv.update(node.output)
    return names


def quantize_int8(model: onnx.ModelProto, calibration_images: np.ndarray) -> onnx.ModelProto:
    """The QDQ INT8 model of the float ``model``, calibrated on uint8 ``calibration_images`` [N, H, W, C]."""
    with tempfile.TemporaryDirectory(prefix="quantize-") as tmp:
        source, prepared, quantized = (Path(tmp) / name for name in ("float.onnx", "prepared.onnx", "int8.onnx"))
        onnx.save(model, source)
        # shape inference and basic fusions (Conv+BatchNorm...) first, as the quantizer expects; sympy-based
        # symbolic shape inference is for transformers, and the TensorFlow environment has no sympy
        quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
        quantize_static(
            str(prepared), str(quantized), CalibrationImages(calibration_images), quant_format=QuantFormat.QDQ,
            per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, reduce_range=False,
            calibrate_method=CalibrationMethod.MinMax, nodes_to_exclude=stem_nodes(onnx.load(prepared)),
        )
        return onnx.load(quantized)


def logits_step(model: onnx.ModelProto) -> float | None:
    """The quantization scale of the logits (the DequantizeLinear that writes them), None when they are float."""
    initializers = {i.name: i for i in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "DequantizeLinear" and OUTPUT_NAME in node.output and node.input[1] in initializers:
            return float(np.max(onnx.numpy_helper.to_array(initializers[node.input[1]])))
    return None


def _infer(runner: OrtRunner, images: np.ndarray) -> np.ndarray:
    return np.concatenate([runner.infer({INPUT_NAME: images[i:i + CHUNK]})[OUTPUT_NAME]
                           for i in range(0, len(images), CHUNK)])


def check_quantized(float_model: onnx.ModelProto, quantized: onnx.ModelProto, test_images: np.ndarray,
                    test_labels: np.ndarray, *, calibration_size: int, max_accuracy_drop: float = MAX_ACCURACY_DROP,
                    log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run both models on the test images; return the ``quantization`` report or raise QuantizationError.

    The report holds the method, calibration size, both test accuracies, top-1 agreement and max |logit
    difference| with the float model, and the quantized model's own logits on the golden input (the service's
    self-test reference for this file, with its tolerance).
    """
    float_runner, int8_runner = OrtRunner(float_model.SerializeToString()), OrtRunner(quantized.SerializeToString())
    ref, got = _infer(float_runner, test_images), _infer(int8_runner, test_images)
    float_accuracy = float((ref.argmax(1) == test_labels).mean())
    int8_accuracy = float((got.argmax(1) == test_labels).mean())
    drop = 100 * (float_accuracy - int8_accuracy)
    diff = np.abs(ref.astype(np.float64) - got)
    step = logits_step(quantized)
    h, w, c = test_images.shape[1:]
    golden = golden_input(GOLDEN_BATCH, h, w, c, GOLDEN_SEED)
    report = {
        "method": METHOD,
        "calibration_images": calibration_size,
        "test_images": len(test_images),
        "float_test_accuracy": float_accuracy,
        "int8_test_accuracy": int8_accuracy,
        "accuracy_drop_points": drop,
        "max_accuracy_drop_points": max_accuracy_drop,
        "top1_agreement": float((ref.argmax(1) == got.argmax(1)).mean()),
        "max_abs_diff": float(diff.max()),
        "mean_abs_diff": float(diff.mean()),
        "onnx": int8_runner.name,
        "golden": {"seed": GOLDEN_SEED, "batch": GOLDEN_BATCH,
                   "atol": max(GOLDEN_ATOL, GOLDEN_QUANTIZED_STEPS * step) if step else GOLDEN_ATOL,
                   "logits": int8_runner.infer({INPUT_NAME: golden})[OUTPUT_NAME].tolist()},
    }
    failures = []
    if not np.isfinite(got).all():
        failures.append("the quantized model's logits are not all finite")
    if drop > max_accuracy_drop:
        failures.append(f"test accuracy {100 * int8_accuracy:.2f}% is {drop:.2f} points below the float model's "
                        f"{100 * float_accuracy:.2f}%; at most {max_accuracy_drop:g} allowed")
    report["passed"] = not failures
    log(f"int8 on {len(test_images)} test images: accuracy {100 * int8_accuracy:.2f}% (float "
        f"{100 * float_accuracy:.2f}%, drop {drop:.2f} points, at most {max_accuracy_drop:g}), top-1 agreement "
        f"{100 * report['top1_agreement']:.2f}%, max |diff| {report['max_abs_diff']:.3g}"
        f"{'  FAIL' if failures else ''}")
    if failures:
        raise QuantizationError(failures, report)
    return report
