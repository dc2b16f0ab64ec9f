"""The Triton / KServe model repository of an exported file, and its check against that file.

``repository/classifier/`` beside the model holds ``1/model.onnx`` (the float file, unchanged), ``labels.txt``
(one label per line, for Triton's classification extension) and ``config.pbtxt``: platform onnxruntime_onnx, the
input and output as the ONNX file declares them (without the batch dimension, which ``max_batch_size`` stands for),
dynamic batching, and an instance group on the CPU and one on a GPU. Every value about the model comes from the
file (its graph and its contract metadata); none is written down here.

Triton cannot run here, so the check parses ``config.pbtxt`` with Triton's own model-config protobuf (in the
tritonclient environment: ``triton_config``) and compares every field with what the ONNX file in the repository
says, and ``labels.txt`` with its labels.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import onnx

from cifar10_pipeline.export.writer import check_model
from cifar10_pipeline.files import atomic_path, write_bytes

MODEL_NAME = "classifier"  # the service's default name on the Open Inference Protocol (INFERENCE_MODEL_NAME)
VERSION = "1"
PLATFORM = "onnxruntime_onnx"
LABELS_FILE = "labels.txt"
# the largest batch Triton gathers, as the GPU image's batcher (INFERENCE_BATCH_MAX_SIZE=32)
MAX_BATCH_SIZE = 32
# how long Triton waits for more requests to batch (microseconds): the service's batcher waits 2 ms
MAX_QUEUE_DELAY_US = 2000
INSTANCE_KINDS = ("KIND_CPU", "KIND_GPU")  # one instance group each: Triton runs the model on both
# numpy dtype name -> Triton's data type
TRITON_TYPES = {"uint8": "TYPE_UINT8", "float32": "TYPE_FP32"}
PARSER = Path(__file__).with_name("triton_config.py")


class TritonError(RuntimeError):
    """The model cannot be described to Triton (a type Triton's onnxruntime backend has no name for here)."""


@dataclass(frozen=True)
class Tensor:
    name: str
    data_type: str  # Triton's, e.g. TYPE_UINT8
    dims: tuple[int, ...]  # without the batch dimension


@dataclass(frozen=True)
class TritonModel:
    """What ``config.pbtxt`` says, read from an ONNX file."""

    name: str
    max_batch_size: int
    input: Tensor
    output: Tensor
    labels: tuple[str, ...]

    @classmethod
    def from_onnx(cls, model: onnx.ModelProto, name: str = MODEL_NAME,
                  max_batch_size: int = MAX_BATCH_SIZE) -> TritonModel:
        """The configuration of ``model`` (checked against the contract first: ContractError)."""
        info = check_model(model)
        initializers = {i.name for i in model.graph.initializer}
        (graph_input,) = [i for i in model.graph.input if i.name not in initializers]
        (graph_output,) = model.graph.output
        return cls(name, max_batch_size, _tensor(graph_input), _tensor(graph_output), info.labels)

    def config(self) -> dict[str, Any]:
        """The configuration as Triton's ModelConfig message in proto3's JSON mapping (64-bit integers as strings),
        the form ``triton_config`` prints a parsed file in."""
        def tensor(t: Tensor, **extra: str) -> dict[str, Any]:
            return {"name": t.name, "data_type": t.data_type, "dims": [str(d) for d in t.dims], **extra}

        return {
            "name": self.name,
            "platform": PLATFORM,
            "max_batch_size": self.max_batch_size,
            "input": [tensor(self.input)],
            "output": [tensor(self.output, label_filename=LABELS_FILE)],
            "dynamic_batching": {"max_queue_delay_microseconds": str(MAX_QUEUE_DELAY_US)},
            "instance_group": [{"count": 1, "kind": kind} for kind in INSTANCE_KINDS],
        }

    def pbtxt(self, source: str) -> str:
        """``config.pbtxt``'s text; ``source`` names the file it was made from, in a comment."""
        def tensor(t: Tensor, extra: str = "") -> str:
            return (f'  {{\n    name: "{t.name}"\n    data_type: {t.data_type}\n'
                    f'    dims: [ {", ".join(str(d) for d in t.dims)} ]\n{extra}  }}\n')

        groups = ",\n".join(f"  {{\n    count: 1\n    kind: {kind}\n  }}" for kind in INSTANCE_KINDS)
        labels = f"    label_filename: {json.dumps(LABELS_FILE)}\n"
        return (
            f"# Triton model configuration of {source}, written by cifar10-targets from the file's graph and\n"
            f"# metadata. Without a GPU, delete the KIND_GPU instance group: Triton refuses a model it cannot place.\n"
            f'name: "{self.name}"\nplatform: "{PLATFORM}"\nmax_batch_size: {self.max_batch_size}\n'
            f"input [\n{tensor(self.input)}]\n"
            f"output [\n{tensor(self.output, labels)}]\n"
            f"dynamic_batching {{\n  max_queue_delay_microseconds: {MAX_QUEUE_DELAY_US}\n}}\n"
            f"instance_group [\n{groups}\n]\n"
        )


def _tensor(value: onnx.ValueInfoProto) -> Tensor:
    tensor = value.type.tensor_type
    dtype = onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type).name
    if dtype not in TRITON_TYPES:
        raise TritonError(f"{value.name}: no Triton type for {dtype} here (known: {sorted(TRITON_TYPES)})")
    return Tensor(value.name, TRITON_TYPES[dtype], tuple(d.dim_value for d in tensor.shape.dim[1:]))


@dataclass(frozen=True)
class Repository:
    root: Path  # the repository (Triton's --model-repository, KServe's storageUri)
    name: str = MODEL_NAME

    @property
    def folder(self) -> Path:
        return self.root / self.name

    @property
    def model(self) -> Path:
        return self.folder / VERSION / "model.onnx"

    @property
    def config(self) -> Path:
        return self.folder / "config.pbtxt"

    @property
    def labels(self) -> Path:
        return self.folder / LABELS_FILE


def write_repository(model: Path, root: Path, max_batch_size: int = MAX_BATCH_SIZE) -> Repository:
    """The repository of the ONNX file ``model`` in ``root``, each file replaced atomically."""
    triton = TritonModel.from_onnx(onnx.load(model), max_batch_size=max_batch_size)
    repository = Repository(root)
    with atomic_path(repository.model) as partial:
        shutil.copyfile(model, partial)
    write_bytes(repository.labels, "".join(f"{label}\n" for label in triton.labels).encode())
    write_bytes(repository.config, triton.pbtxt(model.name).encode())
    return repository


def parse_config(config: Path, python: Path) -> tuple[dict[str, Any] | None, str]:
    """``config`` parsed by Triton's protobuf with the tritonclient environment's ``python``: (its JSON, "") or
    (None, the parser's error)."""
    done = subprocess.run([str(python), "-I", str(PARSER), str(config)], capture_output=True, text=True, timeout=120)
    if done.returncode:
        return None, done.stderr.strip() or f"the parser exited with {done.returncode}"
    return json.loads(done.stdout), ""


def differences(path: str, found: Any, expected: Any) -> list[str]:
    """One line per field where ``found`` (a parsed configuration) differs from ``expected``, named by its path."""
    if isinstance(found, dict) and isinstance(expected, dict):
        return [line for key in sorted(set(found) | set(expected))
                for line in differences(f"{path}.{key}" if path else key, found.get(key), expected.get(key))]
    if isinstance(found, list) and isinstance(expected, list) and len(found) == len(expected):
        return [line for i, (f, e) in enumerate(zip(found, expected)) for line in differences(f"{path}[{i}]", f, e)]
    if found != expected:
        return [f"{path}: config.pbtxt has {json.dumps(found)}, expected {json.dumps(expected)}"]
    return []


def check_repository(repository: Repository, python: Path, max_batch_size: int = MAX_BATCH_SIZE) -> list[str]:
    """What is wrong with ``repository`` (one line each; [] when nothing): ``config.pbtxt`` parsed by Triton's
    protobuf (``python``: the tritonclient environment's interpreter) against the configuration of the ONNX file
    in it, and ``labels.txt`` against that file's labels."""
    expected = TritonModel.from_onnx(onnx.load(repository.model), repository.name, max_batch_size)
    parsed, error = parse_config(repository.config, python)
    problems = [f"Triton's protobuf refuses config.pbtxt: {error}"] if parsed is None else []
    if parsed is not None:
        problems += differences("", parsed, expected.config())
    labels = repository.labels.read_text().splitlines() if repository.labels.is_file() else None
    if labels != list(expected.labels):
        problems.append(f"{LABELS_FILE} holds {labels}, the ONNX file's labels are {list(expected.labels)}")
    return problems
