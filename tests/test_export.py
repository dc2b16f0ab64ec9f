"""Export with parity, for both frameworks (``--framework``): the ONNX file meets the contract, agrees with the
framework, and a tampered graph is refused with nothing written."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import helper, numpy_helper

from export.__main__ import main as export_main
from export.parity import OrtRunner, ParityError, Tolerance, check_parity
from export.writer import write_atomic
from contract import METADATA_KEYS, ContractError, golden_input
from inference.model import check_contract
from training.datasets import load_dataset


@pytest.fixture(scope="module")
def exported(trained, tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "model.onnx"
    assert export_main(["--run", str(trained.run.path), "--out", str(out)]) == 0
    return out


def test_exported_file_meets_the_contract_and_carries_its_metadata(exported, trained, trainer):
    info = check_contract(exported)
    assert info.labels == tuple(trained.run.info["classes"]) and info.num_classes == 10
    assert info.input_shape == (32, 32, 3)
    meta = info.metadata
    assert set(meta) == set(METADATA_KEYS)
    assert meta["framework"] == trainer.FRAMEWORK and meta["dataset"] == "synthetic"
    assert meta["framework_version"] == trained.run.info["framework_version"]
    assert meta["train_config"] == trained.run.config.to_dict()
    assert meta["parity"]["passed"] and meta["parity"]["max_abs_diff"] <= 1e-4
    assert meta["parity"]["cases"][0]["samples"] == 2000  # every test image by default
    assert meta["test_accuracy"] == meta["parity"]["test_accuracy"] > 0.5
    model = onnx.load(str(exported))
    assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= 17
    beside = json.loads(exported.with_name("model.parity.json").read_text())
    assert beside == meta["parity"]


def test_onnxruntime_answers_like_the_framework_on_real_images_and_any_batch_size(exported, trained, exporter):
    runner, _, _ = exporter.convert(trained.run)
    session = ort.InferenceSession(str(exported), providers=["CPUExecutionProvider"])
    images = load_dataset("synthetic").test_images[:300]
    for batch in (1, 7, 300):
        got = session.run(["logits"], {"image": images[:batch]})[0]
        want = runner.infer({"image": images[:batch]})["logits"]
        assert got.dtype == np.float32 and got.shape == (batch, 10)
        np.testing.assert_allclose(got, want, atol=1e-4)


def test_exported_graph_averages_each_image_with_its_mirror(exported, trained):
    # the tiny config trains with flips and bakes flip TTA into the graph: mirrored images, same logits
    assert trained.run.config.flip and trained.run.config.tta
    session = ort.InferenceSession(str(exported), providers=["CPUExecutionProvider"])
    images = load_dataset("synthetic").test_images[:64]
    logits, mirrored = (session.run(["logits"], {"image": x})[0] for x in (images, images[:, :, ::-1].copy()))
    np.testing.assert_allclose(mirrored, logits, atol=1e-5)
    assert np.abs(logits).max() > 0.1  # not trivially equal


def test_golden_logits_in_the_report_reproduce_with_onnxruntime(exported):
    info = check_contract(exported)
    golden = info.metadata["parity"]["golden"]
    session = ort.InferenceSession(str(exported), providers=["CPUExecutionProvider"])
    got = session.run(["logits"], {"image": golden_input(golden["batch"], 32, 32, 3, seed=golden["seed"])})[0]
    np.testing.assert_allclose(got, np.array(golden["logits"]), atol=1e-4)


def _tampered(model: onnx.ModelProto) -> onnx.ModelProto:
    """The same graph with 5 added to one logit: a plausible-looking but wrong file, whatever the converter's
    node and initializer names are."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    last = next(node for node in model.graph.node if "logits" in node.output)
    last.output[:] = ["untampered_logits"]
    model.graph.initializer.append(numpy_helper.from_array(5 * np.eye(10, dtype=np.float32)[3], "tamper"))
    model.graph.node.append(helper.make_node("Add", ["untampered_logits", "tamper"], ["logits"]))
    return model


def test_parity_fails_on_a_tampered_graph_and_reports_every_case(trained, exporter):
    runner, model, _ = exporter.convert(trained.run)
    ds = load_dataset("synthetic")
    with pytest.raises(ParityError) as e:
        check_parity(runner, OrtRunner(_tampered(model).SerializeToString()), ds.test_images[:1000],
                     ds.test_labels[:1000], log=lambda line: None)
    assert len(e.value.failures) >= 3  # real images and both random batches each fail
    assert all("max |diff|" in f or "top-1 agreement" in f for f in e.value.failures)
    assert not e.value.report["passed"] and e.value.report["max_abs_diff"] == pytest.approx(5, abs=1e-3)


def test_export_cli_writes_nothing_when_parity_fails(trained, exporter, tmp_path, monkeypatch, capsys):
    runner, model, version = exporter.convert(trained.run)
    monkeypatch.setattr(exporter, "convert", lambda run: (runner, _tampered(model), version))
    out = tmp_path / "model.onnx"
    assert export_main(["--run", str(trained.run.path), "--out", str(out)]) == 1
    assert not out.exists() and list(tmp_path.iterdir()) == []
    err = capsys.readouterr().err
    assert "parity failed" in err and "nothing written" in err


def test_tolerances_are_configurable(trained, exporter):
    runner, model, _ = exporter.convert(trained.run)
    ds = load_dataset("synthetic")
    with pytest.raises(ParityError, match="max \\|diff\\|"):
        check_parity(runner, OrtRunner(model.SerializeToString()), ds.test_images[:1000], ds.test_labels[:1000],
                     Tolerance(max_abs_diff=0.0), log=lambda line: None)


def _edit(path, out, edit):
    model = onnx.load(str(path))
    edit(model)
    onnx.save(model, str(out))
    return out


def _rename_input(model):
    for node in model.graph.node:
        node.input[:] = ["pixels" if name == "image" else name for name in node.input]
    model.graph.input[0].name = "pixels"


def _drop_metadata(key):
    def edit(model):
        keep = [p for p in model.metadata_props if p.key != key]
        del model.metadata_props[:]
        model.metadata_props.extend(keep)
    return edit


def _set_metadata(key, value):
    def edit(model):
        next(p for p in model.metadata_props if p.key == key).value = value
    return edit


@pytest.mark.parametrize("edit, message", [
    (_rename_input, "inputs are ['pixels'], expected ['image']"),
    (_drop_metadata("labels"), "metadata key 'labels' is missing"),
    (_drop_metadata("parity"), "metadata key 'parity' is missing"),
    (_set_metadata("labels", json.dumps(["cat", "dog"])), "2 labels but the output has 10 classes"),
    (_set_metadata("labels", "not json"), "is not a valid json"),
    (_set_metadata("input_height", "28"), "input_height=28 but the input shape is"),
])
def test_contract_check_refuses_bad_files(exported, tmp_path, edit, message):
    with pytest.raises(ContractError) as e:
        check_contract(_edit(exported, tmp_path / "bad.onnx", edit))
    assert message in str(e.value)


@pytest.mark.parametrize("content, message", [(None, "no such file"), (b"not an onnx file", "onnxruntime cannot load it")])
def test_contract_check_refuses_missing_and_unreadable_files(tmp_path, content, message):
    path = tmp_path / "model.onnx"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ContractError, match=message):
        check_contract(path)


def test_atomic_write_keeps_the_old_file_when_the_write_fails(tmp_path):
    path = tmp_path / "model.onnx"
    write_atomic(b"old", path)
    with pytest.raises(TypeError):
        write_atomic("not bytes", path)  # fails after the temporary file was created
    assert path.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["model.onnx"]


@pytest.mark.parametrize("args, message", [
    (["--run", "/nonexistent/run"], "is not a run directory"),
    (["--runs-dir", "/nonexistent"], "no run recorded"),
    (["--parity-images", "10"], "use at least 1000"),
    (["--min-agreement", "2"], "must be in [0, 1]"),
])
def test_export_cli_bad_arguments(args, message):
    result = subprocess.run([sys.executable, "-m", "export", *args], capture_output=True, text=True)
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr


def test_export_help():
    result = subprocess.run([sys.executable, "-m", "export", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "--max-abs-diff" in result.stdout and "--parity-images" in result.stdout
