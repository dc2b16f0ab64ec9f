"""``cifar10-targets`` as `make targets` runs it, on a tiny exported model and the synthetic test set: the table
written beside the model and printed, exit status 1 when a float target disagrees or an INT8 twin misses its
gate, 2 on usage errors. The OpenVINO, browser and Triton rows need environments of their own (their own tests)."""

from __future__ import annotations

import json
import shutil

import onnx

from cifar10_pipeline.export.quantize import quantized_path
from cifar10_pipeline.export.targets import __main__ as targets
from cifar10_pipeline.export.targets.ort_format import ort_paths, write_ort_format
from tests.support.onnx_models import write_model, write_quantized_model

LOCAL = ["--skip", "openvino", "browser", "triton", "--latency-runs", "5"]


def run(capsys, *argv: str) -> tuple[int, str, str]:
    try:
        code = targets.main(list(argv))
    except SystemExit as e:  # argparse
        code = e.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def table(model) -> dict:
    return json.loads((model.parent / "targets.json").read_text())


def test_agreeing_targets_pass_and_the_table_is_written_beside_the_model(model, capsys):
    write_quantized_model(quantized_path(model), seed=0)
    code, out, err = run(capsys, "--model", str(model), *LOCAL)
    assert code == 0, err
    figures = table(model)
    assert [row["target"] for row in figures["rows"]] == [
        "onnxruntime CPU, float (reference)", "onnxruntime CPU, INT8", "ORT format"]
    assert figures["passed"] and figures["test_images"] == 2000 and figures["dataset"] == "synthetic"
    reference, int8, ort_format = figures["rows"]
    assert ort_format["top1_agreement"] == 1.0 and ort_format["file"] == str(model.with_suffix(".ort"))
    assert int8["kind"] == "int8" and int8["file"] == str(quantized_path(model))
    assert int8["size_bytes"] == quantized_path(model).stat().st_size
    assert out == (model.parent / "targets.md").read_text()
    assert "| ORT format | `model.ort` |" in out and "every target passed" in err


def test_a_float_target_that_disagrees_exits_1(model, capsys, monkeypatch):
    other = write_model(model.parent / "other.onnx", seed=3)  # another model: most images answer differently

    def convert_the_other(path):  # an .ort file of the wrong model
        shutil.copyfile(write_ort_format(other).model, ort_paths(path).model)
        return ort_paths(path)

    monkeypatch.setattr(targets, "write_ort_format", convert_the_other)
    code, out, err = run(capsys, "--model", str(model), *LOCAL)
    assert code == 1
    row = table(model)["rows"][-1]
    assert row["target"] == "ORT format" and not row["passed"] and not table(model)["passed"]
    assert row["failures"][0].startswith("top-1 agreement ") and "< 99.9%" in row["failures"][0]
    assert "FAIL ORT format: top-1 agreement" in err and "1 of 2 targets failed" in err


def test_an_int8_twin_that_misses_its_accuracy_gate_exits_1(model, capsys):
    int8 = write_quantized_model(quantized_path(model), seed=0)
    edited = onnx.load(int8)
    entry = next(p for p in edited.metadata_props if p.key == "quantization")
    entry.value = json.dumps({**json.loads(entry.value), "max_accuracy_drop_points": -50.0})  # demands 50 more
    onnx.save(edited, int8)
    code, out, err = run(capsys, "--model", str(model), *LOCAL)
    assert code == 1
    row = table(model)["rows"][1]
    assert row["target"] == "onnxruntime CPU, INT8" and len(row["failures"]) == 1
    assert "points below the float model's" in row["failures"][0] and "at most -50 allowed" in row["failures"][0]


def test_usage_errors_exit_2_with_a_reason(model, tmp_path, capsys, monkeypatch):
    assert run(capsys, "--model", str(tmp_path / "none.onnx"), *LOCAL)[0] == 2
    code, _, err = run(capsys, "--model", str(write_quantized_model(tmp_path / "q.onnx")), *LOCAL)
    assert code == 2 and "it is a quantized file" in err
    monkeypatch.setenv("OPENVINO_VENV", str(tmp_path / "nowhere"))
    code, _, err = run(capsys, "--model", str(model), "--skip", "browser", "triton")
    assert code == 2 and "make install-openvino" in err
    assert run(capsys, "--model", str(model), "--skip", "everything")[0] == 2
    assert not (model.parent / "targets.json").exists()
