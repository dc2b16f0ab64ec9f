"""`make export REGISTER=1 QUANTIZE=int8` in MLflow, read back through the client: the ONNX files logged as MLflow
models (onnx flavour, signature, input example) that give the exported file's logits, their reports, the registered
version and its alias; and `cifar10-export` of an MLflow run or a registered version."""

from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort
import pytest

from cifar10_pipeline.contract import INPUT_NAME, golden_input
from cifar10_pipeline.export.__main__ import main as export_main
from cifar10_pipeline.training.loop import train
from tests.support.runs import tiny_config


def logits(model: bytes | str, images: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    return session.run(None, {INPUT_NAME: images})[0]


def images(shape: tuple[int, ...]) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (16, *shape), dtype=np.uint8)


def logged_models(tracked) -> dict[str, object]:
    import mlflow

    found = mlflow.search_logged_models(experiment_ids=[tracked.client.get_run(tracked.run_id).info.experiment_id],
                                        output_format="list")
    return {m.name: m for m in found if m.source_run_id == tracked.run_id}


def test_the_logged_onnx_model_gives_the_exported_files_logits(tracked, registered, fluent):
    import mlflow

    models = logged_models(tracked)
    assert {"onnx", "onnx-int8"} <= set(models)
    loaded = mlflow.onnx.load_model(models["onnx"].model_uri)
    batch = images((32, 32, 3))
    np.testing.assert_array_equal(logits(loaded.SerializeToString(), batch), logits(str(registered.model), batch))
    int8 = mlflow.onnx.load_model(models["onnx-int8"].model_uri)
    int8_file = registered.model.with_name("model.int8.onnx")
    np.testing.assert_array_equal(logits(int8.SerializeToString(), batch), logits(str(int8_file), batch))


def test_the_logged_model_has_the_contracts_signature_and_the_golden_input_example(tracked, registered, fluent,
                                                                                     tmp_path):
    import mlflow

    info = mlflow.models.get_model_info(logged_models(tracked)["onnx"].model_uri)
    (inputs,), (outputs,) = info.signature.inputs.inputs, info.signature.outputs.inputs
    assert (inputs.name, inputs.type, inputs.shape) == ("image", np.dtype("uint8"), (-1, 32, 32, 3))
    assert (outputs.name, outputs.type, outputs.shape) == ("logits", np.dtype("float32"), (-1, 10))
    local = mlflow.artifacts.download_artifacts(info.model_uri, dst_path=str(tmp_path))
    example = mlflow.models.Model.load(local).load_input_example(local)
    np.testing.assert_array_equal(np.asarray(example[INPUT_NAME]), golden_input(1, 32, 32, 3))


def test_the_reports_and_gate_figures_are_on_the_training_run(tracked, registered):
    exported = {a.path for a in tracked.client.list_artifacts(tracked.run_id, "export")}
    assert exported == {"export/model.parity.json", "export/model.int8.quantization.json"}
    parity = json.loads(registered.model.with_name("model.parity.json").read_text())
    metrics = tracked.client.get_run(tracked.run_id).data.metrics
    assert metrics["onnx_test_accuracy"] == parity["test_accuracy"]
    assert metrics["onnx_max_abs_diff"] == parity["max_abs_diff"]
    gate = json.loads(registered.model.with_name("model.int8.quantization.json").read_text())
    assert metrics["int8_accuracy_drop_points"] == gate["accuracy_drop_points"]


def test_register_makes_a_version_with_the_champion_alias(tracked, registered, fluent, tmp_path):
    import mlflow

    version = tracked.client.get_model_version_by_alias("tiny-classifier", "champion")
    assert version.run_id == tracked.run_id
    assert "registered tiny-classifier version 1 as models:/tiny-classifier@champion" in registered.out
    # what the README has users put in front of the service: the registered file is the exported file, byte for byte
    mlflow.artifacts.download_artifacts("models:/tiny-classifier@champion", dst_path=str(tmp_path),
                                        tracking_uri=tracked.client.tracking_uri)
    assert sorted(p.name for p in tmp_path.glob("*.onnx")) == ["model.onnx"]
    assert (tmp_path / "model.onnx").read_bytes() == registered.model.read_bytes()


@pytest.mark.slow  # two more exports, parity included
@pytest.mark.parametrize("reference", ["models:/tiny-classifier@champion", "runs:/{run_id}"])
def test_export_takes_an_mlflow_run_or_a_registered_version(tracked, registered, reference, tmp_path, capsys):
    out = tmp_path / "again.onnx"
    code = export_main(["--run", reference.format(run_id=tracked.run_id), "--runs-dir", str(tracked.runs_dir),
                        "--out", str(out), "--tracking", "off", "--parity-images", "1000"])
    assert code == 0, capsys.readouterr().err[-2000:]
    fetched = tracked.runs_dir / f"mlflow-{tracked.run_id}"
    assert (fetched / "config.json").read_text() == (tracked.result.run.path / "config.json").read_text()
    batch = images((32, 32, 3))
    np.testing.assert_array_equal(logits(str(out), batch), logits(str(registered.model), batch))


def test_an_unknown_reference_is_a_user_error(tracked, tmp_path, capsys):
    code = export_main(["--run", "models:/no-such-model@champion", "--runs-dir", str(tracked.runs_dir),
                        "--out", str(tmp_path / "m.onnx")])
    assert code == 2
    assert "models:/no-such-model@champion is not in the MLflow store" in capsys.readouterr().err


@pytest.mark.slow  # a training run of its own and its export
def test_register_needs_a_tracked_run(framework, tracking_on, tmp_path, capsys):
    run = train(tiny_config(tmp_path, epochs=1, tracking=False), framework.name).run
    code = export_main(["--run", str(run.path), "--out", str(tmp_path / "m.onnx"), "--register"])
    assert code == 1
    assert "was trained untracked (no MLflow run); nothing registered (the files are written)" in \
        capsys.readouterr().err
    assert (tmp_path / "m.onnx").is_file()
