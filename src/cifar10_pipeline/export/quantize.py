"""INT8: the recipe that turns an exported float model into its statically quantized twin (onnxruntime's quantizer).

The recipe is onnxruntime's for CPUs with VNNI: the graph pre-processed (``quant_pre_process``), then
``quantize_static`` in the QDQ format with per-channel QInt8 weights, QUInt8 activations, no reduced range, and
MinMax ranges calibrated on a few hundred training images. The stem (the preprocessing nodes and the first
convolution, which reads 1-3 channels) stays float: an INT8 convolution over so few input channels is slower
than the float one on onnxruntime's CPU kernels, and its input would be quantized twice (pixels, then the
normalised image). Figures: ``python -m benchmarks.quantize`` (BENCHMARKS.md).

The accuracy gate that the INT8 model passes before it is written is ``export.gates.check_quantized``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process

from cifar10_pipeline.contract import INPUT_NAME, OUTPUT_NAME

QUANTIZE_CHOICES = ("int8",)
CALIBRATION_IMAGES = 512
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


class CalibrationImages(CalibrationDataReader):
    """uint8 [N, H, W, C] images fed to the calibration session in batches."""

    def __init__(self, images: np.ndarray):
        self._batches = iter([{INPUT_NAME: images[i:i + CALIBRATION_BATCH]}
                              for i in range(0, len(images), CALIBRATION_BATCH)])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._batches, None)


def calibration_sample(images: np.ndarray, count: int, seed: int) -> np.ndarray:
    """``count`` of ``images`` (all of them when fewer), drawn without replacement by ``seed`` and kept in their
    order: the calibration set, the same for every export of a run."""
    rng = np.random.default_rng(seed)
    return images[np.sort(rng.choice(len(images), min(count, len(images)), replace=False))]


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
