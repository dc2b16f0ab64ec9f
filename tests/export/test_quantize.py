"""INT8 export (``make export QUANTIZE=int8``, ``python -m cifar10_pipeline.export --quantize int8``) for both frameworks: the twin
file meets the contract with the float file's metadata plus its quantization report, the service accepts it and
refuses it tampered, and the accuracy gate writes nothing when the quantized model loses too much."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import onnx
import pytest

from cifar10_pipeline.contract import METADATA_KEYS, ContractError
from cifar10_pipeline.export import pipeline
from cifar10_pipeline.export.__main__ import main as export_main
from cifar10_pipeline.inference.runtime import load_session
from tests.support.contract import check_contract
from tests.support.onnx_edits import tampered
from tests.support.paths import REPO

VENV = Path(sys.executable).parent.parent  # this test's environment, the framework's own


@pytest.fixture(scope="module")
def made(trained, tmp_path_factory) -> Path:
    """`make export QUANTIZE=int8` of the tiny run, in this environment: the float file's path."""
    out = tmp_path_factory.mktemp("make-export") / "model.onnx"
    installed = str(VENV / ".installed")
    result = subprocess.run(
        ["make", "-C", str(REPO), "export", f"RUN={trained.run.path}", f"MODEL={out}", "QUANTIZE=int8",
         f"VENV={VENV}", f"TF_VENV={VENV}", "-o", installed],
        capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "int8 on 2000 test images" in result.stderr
    return out


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


def test_the_int8_graph_has_int8_weights_and_a_float_stem(made):
    graph = onnx.load(str(made.with_name("model.int8.onnx"))).graph
    int8_weights = [i for i in graph.initializer if i.data_type == onnx.TensorProto.INT8]
    assert len(int8_weights) >= 7  # the convolutions after the first and the classifier
    producers = {out: node.op_type for node in graph.node for out in node.output}
    convs = [node for node in graph.node if node.op_type == "Conv"]
    float_fed = [node for node in convs if producers.get(node.input[0]) != "DequantizeLinear"]
    # the stem: the first convolution reads the float image (once, or once per TTA branch: the TensorFlow export
    # runs the body on the image and on its mirror); every later one reads quantized activations
    assert 1 <= len(float_fed) <= 2 and len(convs) - len(float_fed) >= 6
    assert all(producers.get(node.input[0]) in {"Mul", "Transpose", "Concat"} for node in float_fed)


def test_the_service_accepts_the_int8_file_and_refuses_it_tampered(made, tmp_path):
    int8 = made.with_name("model.int8.onnx")
    loaded = load_session(int8, ["CPUExecutionProvider"], 1)
    assert loaded.self_test["reference"] == "quantization" and loaded.self_test["compared_to_parity"]
    assert loaded.self_test["max_abs_diff"] <= loaded.self_test["atol"] < 1
    bad = tmp_path / "model.int8.onnx"
    onnx.save(tampered(onnx.load(str(int8))), bad)
    with pytest.raises(ContractError, match="golden logits differ from the quantization report"):
        load_session(bad, ["CPUExecutionProvider"], 1)


def _refused(trained, tmp_path, capsys, *extra: str) -> str:
    out = tmp_path / "model.onnx"
    assert export_main(["--run", str(trained.run.path), "--out", str(out), "--quantize", "int8", *extra]) == 1
    assert list(tmp_path.iterdir()) == []  # neither the float file nor the INT8 one
    err = capsys.readouterr().err
    assert "quantization gate failed" in err and "nothing written" in err
    return err


def test_an_impossible_gate_refuses_the_int8_file_and_writes_nothing(trained, tmp_path, capsys):
    err = _refused(trained, tmp_path, capsys, "--max-accuracy-drop", "-1")
    assert "points below the float model's" in err and "at most -1 allowed" in err
    figures = json.loads(err[err.index("{"):])  # every figure, as JSON
    assert figures["max_accuracy_drop_points"] == -1 and not figures["passed"]
    assert {"float_test_accuracy", "int8_test_accuracy", "top1_agreement", "max_abs_diff"} <= set(figures)


def test_a_too_lossy_quantization_is_refused(trained, tmp_path, capsys, monkeypatch):
    quantize_int8 = pipeline.quantize_int8
    # one logit pushed up by 5 after quantization: most images land in one class
    monkeypatch.setattr(pipeline, "quantize_int8", lambda model, images: tampered(quantize_int8(model, images)))
    err = _refused(trained, tmp_path, capsys)
    figures = json.loads(err[err.index("{"):])
    assert figures["accuracy_drop_points"] > 0.3 and figures["top1_agreement"] < 0.9
