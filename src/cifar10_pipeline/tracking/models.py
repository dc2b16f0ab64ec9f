"""Exported models in MLflow: logging an export into its training run, registering it, and fetching a run back.

``log_export`` adds to the MLflow run of the exported training run: the ONNX file as an MLflow model of the ``onnx``
flavour (signature from the contract: ``image`` uint8 [-1, H, W, C] -> ``logits`` float32 [-1, classes]; the
contract's golden image as input example), its parity report and figures, and with ``--quantize int8`` the INT8
file the same way with its accuracy gate's report. ``register`` makes the float file a new version of a registered
model and points an alias (``champion``) at it. ``fetch_run`` downloads the run directory a training run logged
(``run/``), so that ``cifar10-export`` exports an MLflow run or a registered version as it exports a run directory.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from cifar10_pipeline.contract import INPUT_DTYPE, INPUT_NAME, OUTPUT_DTYPE, OUTPUT_NAME, decode_metadata, golden_input
from cifar10_pipeline.tracking import store
from cifar10_pipeline.tracking.runs import RunRef
from cifar10_pipeline.tracking.settings import RUN_ARTIFACTS, TrackingError, redact

FLOAT_MODEL, INT8_MODEL = "onnx", "onnx-int8"  # names of the logged models in the run
EXPORT_ARTIFACTS = "export"  # artifact folder of the reports
# where MLflow's fluent API keeps its store for the child processes too (mlflow.environment_variables)
TRACKING_URI_ENV, REGISTRY_URI_ENV = "MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"


@dataclass(frozen=True)
class Logged:
    model_uri: str  # the logged float model (models:/m-...)
    int8_model_uri: str | None
    registered: str | None  # models:/NAME@ALIAS of the registered version, when registered
    version: str | None


def _signature_and_example(path: Path) -> tuple[Any, dict[str, Any]]:
    """The MLflow signature of a contract file and its input example (the golden image), from its metadata."""
    import onnx
    from mlflow.models import ModelSignature
    from mlflow.types import Schema, TensorSpec

    metadata, _ = decode_metadata({p.key: p.value for p in onnx.load(path, load_external_data=False).metadata_props})
    h, w, c = (int(metadata[k]) for k in ("input_height", "input_width", "input_channels"))
    signature = ModelSignature(inputs=Schema([TensorSpec(INPUT_DTYPE, (-1, h, w, c), INPUT_NAME)]),
                               outputs=Schema([TensorSpec(OUTPUT_DTYPE, (-1, len(metadata["labels"])), OUTPUT_NAME)]))
    return signature, {INPUT_NAME: golden_input(1, h, w, c)}


def _requirements() -> list[str]:
    """What loading the logged model needs, pinned to this environment's versions (given, so MLflow does not run the
    model in a subprocess to guess them)."""
    import importlib.metadata

    return [f"{name}=={importlib.metadata.version(name)}" for name in ("onnx", "onnxruntime")]


def _log_onnx(path: Path, name: str) -> str:
    """Log the ONNX file ``path`` into the active run as model ``name``; returns its model URI."""
    import mlflow
    import onnx

    signature, example = _signature_and_example(path)
    # one self-contained file, as exported: the service serves a file, and its model_id is that file's sha256
    info = mlflow.onnx.log_model(onnx.load(path), name=name, signature=signature, input_example=example,
                                 pip_requirements=_requirements(), onnx_execution_providers=["CPUExecutionProvider"],
                                 save_as_external_data=False)
    return info.model_uri


def _figures(report: Mapping[str, Any], keys: tuple[str, ...], prefix: str) -> dict[str, float]:
    return {f"{prefix}{k}": float(report[k]) for k in keys if isinstance(report.get(k), (int, float))}


def log_export(ref: Mapping[str, Any], *, model: Path, report_path: Path, int8_model: Path | None = None,
               int8_report_path: Path | None = None, register: str | None = None,
               alias: str | None = None) -> Logged:
    """Log an export into the training run ``ref`` (run.json's ``mlflow`` entry): the float file (``model``, its
    parity report ``report_path``) and, when given, the INT8 file and its gate's report; with ``register`` (a
    registered model's name) the float file becomes its new version and ``alias`` points at it. Raises the store's
    error (the files are on disk either way: the caller decides how loud to be)."""
    import mlflow

    run = RunRef.from_dict(ref)
    mlflow_client = store.client(run.tracking_uri)
    with fluent_store(run.tracking_uri):
        return _log_export(mlflow, mlflow_client, run, model, report_path, int8_model, int8_report_path, register,
                           alias)


@contextlib.contextmanager
def fluent_store(uri: str) -> Iterator[None]:
    """MLflow's fluent API (``log_model``, ``register_model``) on the store ``uri`` for the block only:
    ``mlflow.set_tracking_uri`` also writes ``MLFLOW_TRACKING_URI`` (and the registry's ``MLFLOW_REGISTRY_URI``) into
    ``os.environ``, which every later run of this process, and every process it starts, would then track into."""
    import mlflow

    saved = {name: os.environ.get(name) for name in (TRACKING_URI_ENV, REGISTRY_URI_ENV)}
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(saved[TRACKING_URI_ENV])  # None unsets the variable
        mlflow.set_registry_uri(saved[REGISTRY_URI_ENV])
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _log_export(mlflow: Any, mlflow_client: Any, run: RunRef, model: Path, report_path: Path, int8_model: Path | None,
                int8_report_path: Path | None, register: str | None, alias: str | None) -> Logged:
    import json

    report = json.loads(report_path.read_text())
    with mlflow.start_run(run_id=run.run_id):
        model_uri = _log_onnx(model, FLOAT_MODEL)
        mlflow.log_artifact(str(report_path), EXPORT_ARTIFACTS)
        mlflow.log_metrics(_figures(report, ("test_accuracy", "max_abs_diff", "top1_agreement"), "onnx_"))
        int8_uri = None
        if int8_model is not None and int8_report_path is not None:
            int8_uri = _log_onnx(int8_model, INT8_MODEL)
            mlflow.log_artifact(str(int8_report_path), EXPORT_ARTIFACTS)
            int8 = json.loads(int8_report_path.read_text())
            mlflow.log_metrics(_figures(int8, ("int8_test_accuracy", "accuracy_drop_points", "top1_agreement",
                                               "max_abs_diff"), "int8_"))
    if register is None:
        return Logged(model_uri, int8_uri, None, None)
    version = mlflow.register_model(model_uri, register, tags={"test_accuracy": str(report.get("test_accuracy")),
                                                               "framework": str(report.get("framework"))})
    if alias:
        mlflow_client.set_registered_model_alias(register, alias, version.version)
    uri = f"models:/{register}@{alias}" if alias else f"models:/{register}/{version.version}"
    return Logged(model_uri, int8_uri, uri, str(version.version))


def run_id_of(reference: str, uri: str) -> str:
    """The training run behind ``reference``: ``runs:/RUN_ID``, a bare run id, ``models:/NAME@ALIAS`` or
    ``models:/NAME/VERSION`` (the run that logged the registered version). A TrackingError when the store has none."""
    from mlflow.exceptions import MlflowException

    mlflow_client = store.client(uri)
    try:
        if reference.startswith("models:/"):
            rest = reference.removeprefix("models:/")
            if "@" in rest:
                name, alias = rest.split("@", 1)
                version = mlflow_client.get_model_version_by_alias(name, alias)
            else:
                name, _, number = rest.rpartition("/")
                version = mlflow_client.get_model_version(name, number)
            if not version.run_id:
                raise TrackingError(f"{reference} was not registered from a training run (no run id)")
            return version.run_id
        run_id = reference.removeprefix("runs:/").strip("/").split("/")[0]
        return mlflow_client.get_run(run_id).info.run_id
    except MlflowException as e:
        raise TrackingError(f"{reference} is not in the MLflow store {redact(uri)}: {e.message}") from None


def fetch_run(reference: str, uri: str, into: Path) -> Path:
    """Download the run directory that the training run behind ``reference`` logged (``run/``) to
    ``into/mlflow-<run id>`` and return that path; a TrackingError when there is none."""
    from mlflow.exceptions import MlflowException

    run_id = run_id_of(reference, uri)
    target = into / f"mlflow-{run_id}"
    into.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=into, prefix=".download-") as tmp:
        try:
            folder = Path(store.client(uri).download_artifacts(run_id, RUN_ARTIFACTS, tmp))
        except (MlflowException, OSError) as e:
            raise TrackingError(f"MLflow run {run_id} has no run directory ({RUN_ARTIFACTS}/) to export: "
                                f"{str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
        if not (folder / "config.json").is_file():
            raise TrackingError(f"MLflow run {run_id} has no {RUN_ARTIFACTS}/config.json: it was not logged by "
                                "cifar10-train, or it did not finish")
        shutil.rmtree(target, ignore_errors=True)
        shutil.move(str(folder), target)
    return target
