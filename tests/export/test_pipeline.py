"""The export pipeline (``export.pipeline``): the files it writes meet the contract and carry their metadata and
reports, the INT8 twin carries the float file's, and no work is done twice."""

from __future__ import annotations

import json

import onnx
import pytest

from cifar10_pipeline.contract import GOLDEN_BATCH, METADATA_KEYS
from cifar10_pipeline.export import pipeline
from cifar10_pipeline.export.gates import RANDOM_BATCHES, OrtRunner
from cifar10_pipeline.export.pipeline import ExportOptions, export_run
from tests.support.contract import check_contract


def test_exported_file_meets_the_contract_and_carries_its_metadata(exported, trained, framework):
    info = check_contract(exported)
    assert info.labels == tuple(trained.run.info["classes"]) and info.num_classes == 10
    assert info.input_shape == (32, 32, 3)
    meta = info.metadata
    assert set(meta) == set(METADATA_KEYS)
    assert meta["framework"] == framework.name and meta["dataset"] == "synthetic"
    assert meta["framework_version"] == trained.run.info["framework_version"]
    assert meta["train_config"] == trained.run.config.to_dict()
    assert meta["parity"]["passed"] and meta["parity"]["max_abs_diff"] <= 1e-4
    assert meta["parity"]["cases"][0]["samples"] == 2000  # every test image by default
    assert meta["test_accuracy"] == meta["parity"]["test_accuracy"] > 0.5
    model = onnx.load(str(exported))
    assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= 17
    beside = json.loads(exported.with_name("model.parity.json").read_text())
    assert beside == meta["parity"]


def test_make_export_quantize_writes_an_int8_twin_with_the_same_contract_and_metadata(made, framework):
    int8 = made.with_name("model.int8.onnx")
    assert sorted(p.name for p in made.parent.iterdir()) == [
        "model.int8.onnx", "model.int8.quantization.json", "model.onnx", "model.parity.json"]
    float_info, info = check_contract(made), check_contract(int8)
    assert info.labels == float_info.labels and info.input_shape == float_info.input_shape
    assert set(info.metadata) == set(METADATA_KEYS) | {"quantization"}
    assert info.metadata["framework"] == framework.name
    same = {k for k in METADATA_KEYS if k != "test_accuracy"}
    assert {k: info.metadata[k] for k in same} == {k: float_info.metadata[k] for k in same}
    report = info.metadata["quantization"]
    assert report == json.loads(made.with_name("model.int8.quantization.json").read_text())
    assert report["method"]["format"] == "QDQ" and report["method"]["weights"] == "QInt8, per channel"
    assert report["calibration_images"] == 512 and report["test_images"] == 2000 and report["passed"]
    assert report["float_test_accuracy"] == float_info.metadata["test_accuracy"] > 0.5
    assert info.metadata["test_accuracy"] == report["int8_test_accuracy"]
    assert report["accuracy_drop_points"] == pytest.approx(
        100 * (report["float_test_accuracy"] - report["int8_test_accuracy"]))
    assert report["accuracy_drop_points"] <= report["max_accuracy_drop_points"] == 0.3
    assert 0.9 <= report["top1_agreement"] <= 1 and 0 < report["max_abs_diff"] < 5


def test_export_run_loads_the_data_once_and_runs_the_float_file_once_over_the_test_set(trained, tmp_path, monkeypatch):
    loads, images_seen = [], {}  # load_dataset's calls; images each onnxruntime session was given
    load_dataset, infer = pipeline.load_dataset, OrtRunner.infer

    def counted_load(*args, **kwargs):
        loads.append(args)
        return load_dataset(*args, **kwargs)

    def counted_infer(runner, feeds):
        images_seen[runner] = images_seen.get(runner, 0) + len(feeds["image"])
        return infer(runner, feeds)

    monkeypatch.setattr(pipeline, "load_dataset", counted_load)
    monkeypatch.setattr(OrtRunner, "infer", counted_infer)
    out = tmp_path / "model.onnx"
    exported = export_run(trained.run, out, ExportOptions(quantize="int8"), log=lambda _: None)
    assert len(loads) == 1
    # two sessions, the float file's then the INT8 file's; the float one saw each of the 2000 test images once
    # (parity and the INT8 gate share its logits) and parity's random batches; the INT8 one the test images and
    # the golden input
    assert list(images_seen.values()) == [2000 + sum(RANDOM_BATCHES), 2000 + GOLDEN_BATCH]
    # what it returns is what it wrote
    assert (exported.model.path, exported.quantized.path) == (out, out.with_name("model.int8.onnx"))
    for written, key in ((exported.model, "parity"), (exported.quantized, "quantization")):
        assert json.loads(written.report_path.read_text()) == written.report
        assert check_contract(written.path).metadata[key] == written.report
