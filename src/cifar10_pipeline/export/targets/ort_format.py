"""The ORT format file for phones and small devices: ``model.ort`` and the ``model.required_operators_and_types.config``
a reduced onnxruntime build is compiled with (``--include_ops_by_config``), both made by onnxruntime's own tool,
``onnxruntime.tools.convert_onnx_models_to_ort``.

The conversion is the tool's defaults for a file that runs anywhere: graph optimizations baked in ("Fixed" style,
level "all") except the x86-only NCHWc layout, INT8 QDQ nodes left as they are (not fused for ARM), and type
reduction on, so the build keeps only the kernels of the types this model uses.
"""

from __future__ import annotations

import contextlib
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import onnxruntime as ort
from onnxruntime.tools.convert_onnx_models_to_ort import OptimizationStyle, convert_onnx_models_to_ort

from cifar10_pipeline.files import atomic_path

OPS_CONFIG_SUFFIX = ".required_operators_and_types.config"


class OrtFormatError(RuntimeError):
    """The conversion failed, or its file does not load."""


@dataclass(frozen=True)
class OrtFormat:
    model: Path  # model.ort
    operators: Path  # model.required_operators_and_types.config


def ort_paths(model: Path) -> OrtFormat:
    """``models/model.onnx`` -> ``models/model.ort`` and ``models/model.required_operators_and_types.config``."""
    return OrtFormat(model.with_suffix(".ort"), model.with_name(model.stem + OPS_CONFIG_SUFFIX))


def write_ort_format(model: Path) -> OrtFormat:
    """Convert ``model`` (an ONNX file) beside it and check that onnxruntime loads the ``.ort`` file; the files are
    replaced atomically, and left as they were when the conversion fails (OrtFormatError)."""
    paths = ort_paths(model)
    with tempfile.TemporaryDirectory(prefix="ort-format-") as tmp:
        out = Path(tmp)
        # the tool logs each step with print: to stderr, where this command's progress goes
        with contextlib.redirect_stdout(sys.stderr):
            try:
                convert_onnx_models_to_ort(model, output_dir=out, optimization_styles=[OptimizationStyle.Fixed],
                                           enable_type_reduction=True)
            except Exception as e:  # onnxruntime's own error types, and the tool's RuntimeError
                raise OrtFormatError(f"{model}: onnxruntime's convert_onnx_models_to_ort failed: {e}") from e
        made = ort_paths(out / model.name)
        try:
            ort.InferenceSession(str(made.model), providers=["CPUExecutionProvider"])
        except Exception as e:
            raise OrtFormatError(f"onnxruntime cannot load the converted {made.model.name}: {e}") from e
        if not made.operators.read_text().strip():
            raise OrtFormatError(f"{made.operators.name} is empty")
        for source, target in ((made.model, paths.model), (made.operators, paths.operators)):
            with atomic_path(target) as partial:
                shutil.copyfile(source, partial)
    return paths
