"""The export pipeline: a finished run -> its trained model -> ONNX -> the gates -> the files.

``export_run`` is all of it, as ``cifar10-export`` runs it. The registry (``model.frameworks``) names the run's
framework, whose network module loads the trained model and whose converter turns it into ONNX; parity proves
onnxruntime against the framework on the test set, then the contract's metadata is stamped and checked; with
``quantize`` the INT8 twin is made, held to the accuracy gate on the whole test set and stamped the same way.
Files are written only once every gate has passed, so a refused model leaves nothing behind. The data set is
loaded once, and onnxruntime's logits of the float model on the test images are inferred once, for parity and
the INT8 gate both.

``prove_and_stamp`` and ``quantize_and_stamp`` are its two steps on a model in memory: the serving benchmarks
and the tests make their files with them, so every file is made the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from cifar10_pipeline.contract import OUTPUT_NAME
from cifar10_pipeline.export.converter import Conversion, Runner
from cifar10_pipeline.export.gates import (MAX_ACCURACY_DROP, MIN_PARITY_IMAGES, OrtRunner, Tolerance, check_parity,
                                           check_quantized, infer_chunked)
from cifar10_pipeline.export.quantize import CALIBRATION_IMAGES, calibration_sample, quantize_int8, quantized_path
from cifar10_pipeline.export.writer import check_model, read_metadata, stamp_metadata, write_model
from cifar10_pipeline.model import frameworks
from cifar10_pipeline.model.frameworks import Framework
from cifar10_pipeline.training.datasets import load_dataset
from cifar10_pipeline.training.run import Run, RunError


@dataclass(frozen=True)
class ExportOptions:
    """The export's choices, one per ``cifar10-export`` flag (the command checks their ranges)."""

    tolerance: Tolerance = Tolerance()  # parity's
    parity_images: int = 0  # the first N test images for parity; 0: all of them
    quantize: str | None = None  # one of quantize.QUANTIZE_CHOICES: also write the quantized twin
    max_accuracy_drop: float = MAX_ACCURACY_DROP  # test-accuracy points the quantized twin may lose
    calibration_images: int = CALIBRATION_IMAGES  # training images that calibrate the quantized twin


@dataclass(frozen=True)
class Written:
    """A model file the export wrote, and its report (also stamped into the file), written beside it."""

    path: Path
    report_path: Path
    report: dict[str, Any]


@dataclass(frozen=True)
class Exported:
    model: Written  # the float file and its parity report
    quantized: Written | None  # its quantized twin and quantization report, when asked for


def run_framework(run: Run) -> Framework:
    """The registry's entry for the framework that trained ``run`` (its run.json says); a RunError when unknown."""
    name = run.info.get("framework")
    if name not in frameworks.FRAMEWORKS:
        raise RunError(f"{run.path}: unknown framework {name!r}; expected one of {list(frameworks.NAMES)}")
    return frameworks.get(name)


def convert_run(run: Run, framework: Framework) -> Conversion:
    """The final model of ``run``, loaded by ``framework``'s network module and converted by its converter."""
    model = framework.load("network").load_model_file(run.final_model(framework.model_file))
    return framework.load("converter").convert(model)


def prove_and_stamp(runner: Runner, model: onnx.ModelProto, *, framework: str, framework_version: str, dataset: str,
                    labels: Sequence[str], train_config: dict[str, Any], images: np.ndarray, image_labels: np.ndarray,
                    tolerance: Tolerance = Tolerance(), log: Callable[[str], None] = print,
                    onnx_runner: OrtRunner | None = None,
                    onnx_outputs: dict[str, np.ndarray] | None = None) -> dict[str, Any]:
    """Check onnxruntime against ``runner`` (the framework) on ``images`` (uint8 [N, H, W, C]) with labels
    ``image_labels`` [N], stamp the metadata into ``model`` and check it against the contract.

    ``onnx_runner`` (onnxruntime on ``model``) and ``onnx_outputs`` (its outputs on ``images``), when the caller
    has them, are used instead of being made again. Returns the parity report; raises GateError (nothing
    stamped) or ContractError.
    """
    if onnx_runner is None:
        onnx_runner = OrtRunner(model.SerializeToString())
    report = check_parity(runner, onnx_runner, images, image_labels, tolerance, log=log, onnx_outputs=onnx_outputs)
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
                       log: Callable[[str], None] = print,
                       float_logits: np.ndarray | None = None) -> tuple[onnx.ModelProto, dict[str, Any]]:
    """The INT8 model of ``model`` (a stamped, checked float model), gated on the test ``images`` (uint8
    [N, H, W, C]) with labels ``image_labels``, stamped with the float model's metadata (``test_accuracy`` its
    own) plus the ``quantization`` report, and checked against the contract.

    ``float_logits``: onnxruntime's logits of ``model`` on ``images``, when the caller has them; else inferred
    here. Returns (quantized model, report); raises GateError (nothing stamped) or ContractError.
    """
    log(f"quantizing to INT8, calibrated on {len(calibration_images)} training images")
    quantized = quantize_int8(model, calibration_images)
    if float_logits is None:
        float_logits = infer_chunked(OrtRunner(model.SerializeToString()), images)[OUTPUT_NAME]
    report = check_quantized(float_logits, quantized, images, image_labels, calibration_size=len(calibration_images),
                             max_accuracy_drop=max_accuracy_drop, log=log)
    stamp_metadata(quantized, {**read_metadata(model), "test_accuracy": report["int8_test_accuracy"],
                               "quantization": report})
    check_model(quantized)
    return quantized, report


def export_run(run: Run, out: Path, options: ExportOptions = ExportOptions(),
               log: Callable[[str], None] = print) -> Exported:
    """Export the finished ``run`` to ``out`` (and its quantized twin beside it with ``options.quantize``).

    Needs the run's framework installed in this environment (a FrameworkError names the one to use). Raises
    GateError when a gate refuses the model (nothing written), RunError, DataError or ContractError.
    """
    framework = run_framework(run)
    info, config = run.info, run.config
    log(f"exporting {run.path} ({framework.name}, {config.dataset})")
    runner, model, version = convert_run(run, framework)
    ds = load_dataset(config.dataset, config.data_dir, seed=config.seed, image_size=config.image_size)
    n = options.parity_images or len(ds.test_images)
    if len(ds.test_images) < MIN_PARITY_IMAGES:
        log(f"warning: the test set has only {len(ds.test_images)} images")
    # onnxruntime's outputs on the test images, once: parity reads the first n, the INT8 gate every one
    onnx_runner = OrtRunner(model.SerializeToString())
    onnx_outputs = infer_chunked(onnx_runner, ds.test_images if options.quantize else ds.test_images[:n])
    report = prove_and_stamp(
        runner, model, framework=framework.name, framework_version=version, dataset=config.dataset,
        labels=info["classes"], train_config=config.to_dict(), images=ds.test_images[:n],
        image_labels=ds.test_labels[:n], tolerance=options.tolerance, log=log, onnx_runner=onnx_runner,
        onnx_outputs={name: values[:n] for name, values in onnx_outputs.items()})
    quantized = None
    if options.quantize:
        quantized, quantization = quantize_and_stamp(
            model, calibration_images=calibration_sample(ds.train_images, options.calibration_images, config.seed),
            images=ds.test_images, image_labels=ds.test_labels, max_accuracy_drop=options.max_accuracy_drop,
            log=log, float_logits=onnx_outputs[OUTPUT_NAME])
    written = Written(out, write_model(model, out, report), report)
    if quantized is None:
        return Exported(written, None)
    path = quantized_path(out, options.quantize)
    return Exported(written, Written(path, write_model(quantized, path, quantization, kind="quantization"),
                                     quantization))
