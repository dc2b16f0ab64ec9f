"""The service reads exported files: its contract check (``inference.runtime.check_session``, through
``tests.support.contract.check_contract``) refuses edited ones, listing what is wrong, and it loads the INT8 twin
and refuses it tampered (its golden self-test)."""

from __future__ import annotations

import json

import onnx
import pytest

from cifar10_pipeline.contract import ContractError
from cifar10_pipeline.inference.runtime import load_session
from tests.support.contract import check_contract
from tests.support.onnx_edits import tampered


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


def test_the_service_accepts_the_int8_file_and_refuses_it_tampered(made, tmp_path):
    int8 = made.with_name("model.int8.onnx")
    loaded = load_session(int8, ["CPUExecutionProvider"], 1)
    assert loaded.self_test["reference"] == "quantization" and loaded.self_test["compared_to_parity"]
    assert loaded.self_test["max_abs_diff"] <= loaded.self_test["atol"] < 1
    bad = tmp_path / "model.int8.onnx"
    onnx.save(tampered(onnx.load(str(int8))), bad)
    with pytest.raises(ContractError, match="golden logits differ from the quantization report"):
        load_session(bad, ["CPUExecutionProvider"], 1)
