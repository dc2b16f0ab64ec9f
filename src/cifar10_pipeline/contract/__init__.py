"""The ONNX model contract, defined once: what every exported model must look like.

Training builds its networks' input to it, the exporters write it, and the service reads it. numpy and the
standard library only: each side checks files with its own engine (onnx protos in ``export``, onnxruntime
sessions in ``inference``) by describing a model as ``TensorSpec`` values and calling ``check_signature``.

Contract:
- one input ``image``: uint8, ``[batch, H, W, C]``, raw pixels (RGB, or gray when C == 1), dynamic batch;
  all preprocessing (scaling, mean/std normalisation, layout change) happens inside the graph.
- one output ``logits``: float32, ``[batch, num_classes]``.
- ``metadata_props`` holding the keys in ``METADATA_KEYS`` (JSON values where noted), among them the parity
  report whose ``golden`` entry holds the exporter's logits on ``golden_input``, and no other key but those of
  ``OPTIONAL_METADATA_KEYS``: a quantized (INT8) file carries ``quantization``, whose ``golden`` entry replaces
  the parity report's in the self-test (``golden_reference``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import numpy as np

INPUT_NAME = "image"
INPUT_DTYPE = np.dtype(np.uint8)
OUTPUT_NAME = "logits"
OUTPUT_DTYPE = np.dtype(np.float32)
MIN_OPSET = 17
DISTRIBUTION = "cifar10-pipeline"  # the installed package whose version files are stamped with

# the golden self-test: exporters store the framework's logits on golden_input(GOLDEN_BATCH, H, W, C,
# GOLDEN_SEED) in the parity report, and the service compares onnxruntime's against them. The tolerance is
# looser than parity's on purpose: the service may run another execution provider (CUDA kernels, TF32) than
# the CPU one parity used; a wrong or corrupted model is off by about 1.
GOLDEN_ATOL = 1e-2
GOLDEN_BATCH = 2
GOLDEN_SEED = 0
# A quantized file's golden logits are onnxruntime's own on the CPU provider at export time (INT8 rounding moves
# logits by far more than GOLDEN_ATOL from the framework's), and its tolerance is this many steps of the logits'
# quantization scale (the last DequantizeLinear's), at least GOLDEN_ATOL: another CPU's INT8 kernels or another
# provider (QDQ run in float) may round a requantisation the other way, which moves a logit by about one step;
# a wrong or corrupted model is still off by about 1.
GOLDEN_QUANTIZED_STEPS = 2

# metadata key -> how its string value is decoded. JSON keys hold structured values.
METADATA_KEYS: dict[str, str] = {
    "labels": "json",  # list[str], one per logit
    "dataset": "str",  # the training data set's name (training.datasets.DATASETS)
    "framework": "str",  # torch | tensorflow
    "framework_version": "str",
    "input_height": "int",
    "input_width": "int",
    "input_channels": "int",
    "test_accuracy": "float",  # fraction in [0, 1] on the dataset's test split
    "train_config": "json",  # the training config that produced the weights
    "parity": "json",  # the export parity report (see export.gates)
    "created": "str",  # ISO 8601, UTC
    "project_version": "str",
}
# keys a file may carry on top of METADATA_KEYS; any other key is refused
OPTIONAL_METADATA_KEYS: dict[str, str] = {
    "quantization": "json",  # INT8 files only: how it was quantized and its accuracy gate (export.gates)
}


class ContractError(ValueError):
    """A model file that does not meet the contract; the message lists every problem found."""

    def __init__(self, source: str, problems: list[str]):
        self.source = source
        self.problems = problems
        super().__init__(f"{source} breaks the model contract:\n  - " + "\n  - ".join(problems))


@dataclass(frozen=True)
class TensorSpec:
    """One graph input or output as an engine describes it: dtype a numpy name (None when the engine's type
    has no numpy equivalent), each dimension an int or a symbolic name (str or None)."""

    name: str
    dtype: str | None
    shape: tuple[int | str | None, ...]


@dataclass(frozen=True)
class ModelInfo:
    """What a checked model file says about itself, decoded from its metadata."""

    labels: tuple[str, ...]
    height: int
    width: int
    channels: int
    metadata: dict[str, Any]  # every metadata key, decoded

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (self.height, self.width, self.channels)


def project_version() -> str:
    """The installed package's version, stamped into every exported file."""
    try:
        return version(DISTRIBUTION)
    except PackageNotFoundError:
        return "unknown (not installed)"


def _decode(kind: str, raw: str) -> Any:
    if kind == "json":
        return json.loads(raw)
    if kind == "int":
        return int(raw)
    if kind == "float":
        return float(raw)
    return raw


def encode_metadata(values: dict[str, Any]) -> dict[str, str]:
    """Turn metadata values into the strings ONNX stores, refusing missing or unknown keys."""
    missing = sorted(set(METADATA_KEYS) - set(values))
    unknown = sorted(set(values) - set(METADATA_KEYS) - set(OPTIONAL_METADATA_KEYS))
    problems = ([f"missing keys {missing}"] if missing else []) + ([f"unknown keys {unknown}"] if unknown else [])
    if problems:
        raise ContractError("metadata", problems)
    kinds = {**METADATA_KEYS, **OPTIONAL_METADATA_KEYS}
    return {k: json.dumps(v) if kinds[k] == "json" else str(v) for k, v in values.items()}


def decode_metadata(raw: Mapping[str, str]) -> tuple[dict[str, Any], list[str]]:
    """The contract's keys of ``raw`` decoded (optional ones when present), and a problem line for each required
    key missing or any key undecodable."""
    meta: dict[str, Any] = {}
    problems: list[str] = []
    for key, kind in {**METADATA_KEYS, **OPTIONAL_METADATA_KEYS}.items():
        if key not in raw:
            if key in METADATA_KEYS:
                problems.append(f"metadata key {key!r} is missing")
            continue
        try:
            meta[key] = _decode(kind, raw[key])
        except ValueError as e:
            problems.append(f"metadata {key!r}={raw[key][:80]!r} is not a valid {kind}: {e}")
    return meta, problems


def check_signature(inputs: Sequence[TensorSpec], outputs: Sequence[TensorSpec], metadata: Mapping[str, str],
                    source: str = "model") -> ModelInfo:
    """Check a model's inputs, outputs and metadata against the contract; raise ContractError listing every
    problem (names first, then types and shapes, then metadata)."""
    problems: list[str] = []
    if [i.name for i in inputs] != [INPUT_NAME]:
        problems.append(f"inputs are {[i.name for i in inputs]}, expected [{INPUT_NAME!r}]")
    if [o.name for o in outputs] != [OUTPUT_NAME]:
        problems.append(f"outputs are {[o.name for o in outputs]}, expected [{OUTPUT_NAME!r}]")
    in_shape = inputs[0].shape if inputs else ()
    out_shape = outputs[0].shape if outputs else ()
    if inputs and inputs[0].dtype != INPUT_DTYPE.name:
        problems.append(f"input type is {inputs[0].dtype}, expected {INPUT_DTYPE.name}")
    if outputs and outputs[0].dtype != OUTPUT_DTYPE.name:
        problems.append(f"output type is {outputs[0].dtype}, expected {OUTPUT_DTYPE.name}")
    if len(in_shape) != 4 or isinstance(in_shape[0], int):
        problems.append(f"input shape is {list(in_shape)}, expected [batch, H, W, C] with a dynamic batch")
    if len(out_shape) != 2 or isinstance(out_shape[0], int):
        problems.append(f"output shape is {list(out_shape)}, expected [batch, num_classes] with a dynamic batch")

    meta, meta_problems = decode_metadata(metadata)
    problems += meta_problems
    labels = meta.get("labels")
    if "labels" in meta and not (isinstance(labels, list) and labels and all(isinstance(x, str) for x in labels)):
        problems.append(f"metadata 'labels' must be a non-empty JSON list of strings, got {labels!r:.80}")
        labels = None
    if labels and len(out_shape) == 2 and isinstance(out_shape[1], int) and out_shape[1] != len(labels):
        problems.append(f"{len(labels)} labels but the output has {out_shape[1]} classes")
    if "quantization" in meta and not isinstance(meta["quantization"], dict):
        problems.append(f"metadata 'quantization' must be a JSON object, got {meta['quantization']!r:.80}")
    for key, axis in {"input_height": 1, "input_width": 2, "input_channels": 3}.items():
        if key in meta and len(in_shape) == 4 and isinstance(in_shape[axis], int) and in_shape[axis] != meta[key]:
            problems.append(f"metadata {key}={meta[key]} but the input shape is {list(in_shape)}")

    if problems:
        raise ContractError(source, problems)
    return ModelInfo(labels=tuple(labels), height=meta["input_height"], width=meta["input_width"],
                     channels=meta["input_channels"], metadata=meta)


def is_quantized(metadata: Mapping[str, Any]) -> bool:
    """Whether decoded metadata describe a quantized file."""
    return "quantization" in metadata


def golden_reference(metadata: Mapping[str, Any]) -> Any:
    """The golden entry a file's self-test compares with (``{"seed", "batch", "logits", "atol"}``, any part may be
    missing or malformed: the caller checks): the quantization report's for a quantized file, else the parity
    report's; ``{}`` when the report has none."""
    report = metadata.get("quantization" if is_quantized(metadata) else "parity")
    return report.get("golden", {}) if isinstance(report, dict) else {}


def golden_input(batch: int, height: int, width: int, channels: int, seed: int = GOLDEN_SEED) -> np.ndarray:
    """The deterministic uint8 ``[batch, H, W, C]`` input behind the parity report's ``golden`` entry.

    Exporters run it through the framework model and store the logits in ``parity["golden"]``
    (``{"seed", "batch", "logits", "atol"}``); the service runs it through onnxruntime at start and after
    every swap and compares. Pixels come from Knuth's multiplicative hash of the element index, not from an
    RNG stream, so every platform and numpy version produces the same bytes.
    """
    n = batch * height * width * channels
    index = np.arange(n, dtype=np.uint64) + np.uint64(seed) * np.uint64(n)
    pixels = (index * np.uint64(2654435761)) % np.uint64(2**32) >> np.uint64(24)  # top 8 of 32 bits
    return pixels.astype(np.uint8).reshape(batch, height, width, channels)
