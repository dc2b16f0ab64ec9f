"""``cifar10-targets``: make every deployment target of an exported model and prove each on the whole test set.

Beside MODEL (after ``cifar10-export``) it writes the Triton / KServe model repository (``repository/classifier/``),
the ORT format file (``model.ort`` and ``model.required_operators_and_types.config``), and the agreement table
``targets.json`` and ``targets.md``: each target (onnxruntime CPU float, the reference; the INT8 twin when the
export made one; the .ort file; onnxruntime's OpenVINO provider; onnxruntime-web in headless Chromium; the Triton
configuration, checked, not run) on every test image of the model's data set. Exit status 1 when a float target
agrees with the reference on fewer than 99.9% of them, an INT8 one misses its accuracy gate, the Triton
configuration does not match the file, or a target cannot run; 2 on a usage error (no model, no data, an
environment missing).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path
from typing import Any

import onnx
from google.protobuf.message import DecodeError

from cifar10_pipeline.contract import ContractError, ModelInfo, is_quantized
from cifar10_pipeline.export.converter import Runner
from cifar10_pipeline.export.gates import OrtRunner
from cifar10_pipeline.export.quantize import quantized_path
from cifar10_pipeline.export.targets import table
from cifar10_pipeline.export.targets.environments import OPENVINO, TRITONCLIENT, EnvironmentMissing
from cifar10_pipeline.export.targets.ort_format import ort_paths, write_ort_format
from cifar10_pipeline.export.targets.remote import WorkerRunner
from cifar10_pipeline.export.targets.table import EngineTarget, EvalSet, Kind, Row
from cifar10_pipeline.export.targets.triton import MAX_BATCH_SIZE, Repository, check_repository, write_repository
from cifar10_pipeline.export.writer import check_model, read_metadata
from cifar10_pipeline.files import write_bytes, write_json
from cifar10_pipeline.training.datasets import DataError, load_dataset

OPENVINO_PROVIDER = "OpenVINOExecutionProvider"
# the targets --skip may leave out (the reference always runs)
OPTIONAL = ("int8", "ort", "openvino", "browser", "triton")
REPOSITORY = "repository"  # the Triton / KServe model repository's folder, beside the model


def log(line: str) -> None:
    print(line, file=sys.stderr)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="cifar10-targets", description=(__doc__ or "").replace("``", ""),
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="Environments: OpenVINO runs in .venv-openvino (make install-openvino, or "
                                       "OPENVINO_VENV), the Triton check in build/venv-tritonclient (make "
                                       "install-tritonclient, or TRITONCLIENT_VENV); make targets makes both.")
    p.add_argument("--model", type=Path, default=Path("models/model.onnx"),
                   help="the float ONNX file cifar10-export wrote (default: models/model.onnx); its INT8 twin "
                        "(model.int8.onnx) is found beside it")
    p.add_argument("--data-dir", help="where the model's data set lives (default: where it was trained from)")
    p.add_argument("--skip", nargs="+", choices=OPTIONAL, default=[], metavar="TARGET",
                   help=f"targets to leave out, of {', '.join(OPTIONAL)}")
    p.add_argument("--latency-runs", type=int, default=table.LATENCY_RUNS, metavar="N",
                   help=f"timed batch-1 calls per target (default: {table.LATENCY_RUNS})")
    p.add_argument("--max-batch-size", type=int, default=MAX_BATCH_SIZE, metavar="N",
                   help=f"Triton's max_batch_size in config.pbtxt (default: {MAX_BATCH_SIZE})")
    return p


def load_test_set(info: ModelInfo, data_dir: str | None) -> EvalSet:
    """The test split of the data set ``info``'s model was trained on, loaded as its training loaded it (the
    config in the metadata: data folder, seed, image size); a DataError when it does not fit the model."""
    config: dict[str, Any] = info.metadata.get("train_config") or {}
    dataset = info.metadata["dataset"]
    ds = load_dataset(dataset, data_dir or config.get("data_dir"), seed=int(config.get("seed", 0)), download=False,
                      image_size=int(config.get("image_size", 0)))
    if ds.test_images.shape[1:] != info.input_shape:
        raise DataError(f"{dataset}'s test images are {list(ds.test_images.shape[1:])}, the model takes "
                        f"{list(info.input_shape)}")
    return EvalSet(ds.test_images, ds.test_labels)


def browser_runner(model: Path) -> contextlib.AbstractContextManager[Runner]:
    # playwright and the page: only when the browser row runs
    from cifar10_pipeline.export.targets.browser import BrowserRunner

    return BrowserRunner(model)


def openvino_active(runner: Runner) -> list[str]:
    providers = getattr(runner, "providers", [])
    return [] if providers and providers[0] == OPENVINO_PROVIDER else [
        f"{OPENVINO_PROVIDER} did not start: the session runs on {providers}"]


def ort_format_runner(model: Path) -> contextlib.AbstractContextManager[Runner]:
    return contextlib.nullcontext(OrtRunner(write_ort_format(model).model.read_bytes()))


def engines(model: Path, skip: list[str]) -> list[EngineTarget]:
    """The targets that run, the reference first."""
    targets = [EngineTarget("onnxruntime CPU, float (reference)", Kind.REFERENCE, model,
                            lambda: contextlib.nullcontext(OrtRunner(model.read_bytes())))]
    int8 = quantized_path(model)
    if "int8" not in skip and int8.is_file():
        quantization = read_metadata(onnx.load(int8)).get("quantization") or {}
        targets.append(EngineTarget("onnxruntime CPU, INT8", Kind.INT8, int8,
                                    lambda: contextlib.nullcontext(OrtRunner(int8.read_bytes())),
                                    max_accuracy_drop=float(quantization.get("max_accuracy_drop_points", 0.0))))
    if "ort" not in skip:
        targets.append(EngineTarget("ORT format", Kind.FLOAT, ort_paths(model).model,
                                    lambda: ort_format_runner(model)))
    if "openvino" not in skip:
        python = OPENVINO.require()
        targets.append(EngineTarget("OpenVINO (onnxruntime-openvino)", Kind.FLOAT, model,
                                    lambda: WorkerRunner(python, model, [OPENVINO_PROVIDER]), check=openvino_active))
    if "browser" not in skip:
        targets.append(EngineTarget("browser (onnxruntime-web wasm, Chromium)", Kind.FLOAT, model,
                                    lambda: browser_runner(model)))
    return targets


def triton_row(model: Path, python: Path, max_batch_size: int) -> Row:
    """Write the repository beside ``model`` and check it: the row of a target that is checked, not run."""
    repository = write_repository(model, model.parent / REPOSITORY, max_batch_size)
    row = Row("Triton / KServe repository", Kind.CONFIG, str(repository.config), repository.model.stat().st_size,
              "Triton's model-config protobuf (tritonclient[grpc])")
    row.failures += check_repository(Repository(repository.root), python, max_batch_size)
    if repository.model.read_bytes() != model.read_bytes():
        row.failures.append(f"{repository.model} is not {model}")
    return row


def read_model(path: Path) -> tuple[onnx.ModelProto, ModelInfo]:
    """The float ONNX file at ``path`` and what it says of itself; a ContractError when it is none."""
    if not path.is_file():
        raise ContractError(str(path), ["no such file: make export writes it"])
    try:
        model = onnx.load(path)
    except DecodeError as e:
        raise ContractError(str(path), [f"not an ONNX file: {e}"]) from e
    info = check_model(model)
    if is_quantized(info.metadata):
        raise ContractError(str(path), ["it is a quantized file: give the float one (its INT8 twin is found "
                                        "beside it)"])
    return model, info


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.latency_runs < 1 or args.max_batch_size < 1:
        parser.error("--latency-runs and --max-batch-size must be at least 1")
    model: Path = args.model
    try:
        info = read_model(model)[1]
        triton_python = None if "triton" in args.skip else TRITONCLIENT.require()
        targets = engines(model, args.skip)
        data = load_test_set(info, args.data_dir)
    except (ContractError, DataError, EnvironmentMissing) as e:
        log(f"error: {e}")
        return 2
    log(f"{len(targets) + (triton_python is not None)} targets of {model} on {len(data.images)} "
        f"{info.metadata['dataset']} test images")
    checked = [] if triton_python is None else [triton_row(model, triton_python, args.max_batch_size)]
    rows = table.rows_of(targets, checked, data, args.latency_runs)
    figures = table.report(rows, model, info.metadata["dataset"], data)
    text = table.markdown(figures)
    write_json(model.parent / "targets.json", figures)
    write_bytes(model.parent / "targets.md", text.encode())
    print(text, end="")
    failed = [row for row in rows if not row.passed]
    for row in failed:
        log(f"FAIL {row.target}: " + "; ".join(row.failures))
    log(f"wrote {model.parent / 'targets.json'} and {model.parent / 'targets.md'}"
        + (f"; {len(failed)} of {len(rows)} targets failed" if failed else "; every target passed"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
