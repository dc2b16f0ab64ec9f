"""From a converted graph to a file ready to write: parity first, then the contract's metadata, then the check;
and from that file to its INT8 twin: quantization, the accuracy gate, the same metadata plus ``quantization``.

The export CLI runs it on a finished run's model; the serving and quantization benchmarks run it too, so every
file is made the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import onnx

from cifar10_pipeline.export.parity import OrtRunner, Runner, Tolerance, check_parity
from cifar10_pipeline.export.quantize import MAX_ACCURACY_DROP, check_quantized, quantize_int8
from cifar10_pipeline.export.writer import check_model, stamp_metadata


def prove_and_stamp(runner: Runner, model: onnx.ModelProto, *, framework: str, framework_version: str, dataset: str,
                    labels: list[str], train_config: dict[str, Any], images: np.ndarray, image_labels: np.ndarray,
                    tolerance: Tolerance = Tolerance(), log: Callable[[str], None] = print) -> dict[str, Any]:
    """Check onnxruntime against ``runner`` (the framework) on ``images`` (uint8 [N, H, W, C]) with labels
    ``image_labels`` [N], stamp the metadata into ``model`` and check it against the contract.

    Returns the parity report; raises ParityError (nothing stamped) or ContractError.
    """
    report = check_parity(runner, OrtRunner(model.SerializeToString()), images, image_labels, tolerance, log=log)
    h, w, c = images.shape[1:]
    stamp_metadata(model, {
        "labels": list(labels), "dataset": dataset, "framework": framework, "framework_version": framework_version,
        "input_height": h, "input_width": w, "input_channels": c, "test_accuracy": report["test_accuracy"],
        "train_config": train_config, "parity": report,
    })
    check_model(model)
    return report


def quantize_and_stamp(model: onnx.ModelProto, *, calibration_images: np.ndarray, images: np.ndarray,
                       image_labels: np.ndarray, max_accuracy_drop: float = MAX_ACCURACY_DROP,
                       log: Callable[[str], None] = print) -> tuple[onnx.ModelProto, dict[str, Any]]:
    """The INT8 model of ``model`` (a stamped, checked float model), gated on the test ``images`` (uint8
    [N, H, W, C]) with labels ``image_labels``, stamped with the float model's metadata (``test_accuracy`` its
    own) plus the ``quantization`` report, and checked against the contract.

    Returns (quantized model, report); raises QuantizationError (nothing stamped) or ContractError.
    """
    log(f"quantizing to INT8, calibrated on {len(calibration_images)} training images")
    quantized = quantize_int8(model, calibration_images)
    report = check_quantized(model, quantized, images, image_labels, calibration_size=len(calibration_images),
                             max_accuracy_drop=max_accuracy_drop, log=log)
    metadata = check_model(model).metadata
    stamp_metadata(quantized, {**metadata, "test_accuracy": report["int8_test_accuracy"], "quantization": report})
    check_model(quantized)
    return quantized, report
