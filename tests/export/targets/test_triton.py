"""The Triton / KServe model repository: its files carry what the ONNX file says (shape, type, labels) for any
model, and Triton's own model-config protobuf (tritonclient[grpc], in its own environment) parses config.pbtxt and
finds every field equal to the file's; a wrong field, a misspelt one, a missing instance group or wrong labels are
each caught."""

from __future__ import annotations

import onnx
import pytest

from cifar10_pipeline.export.targets import __main__ as targets
from cifar10_pipeline.export.targets.triton import Repository, TritonModel, check_repository, write_repository
from tests.support.onnx_models import build_model, write_model

GRAY_LABELS = ["zero", "one", "two", "three", "four"]


def test_the_repository_says_what_the_onnx_file_says(tmp_path):
    model = write_model(tmp_path / "model.onnx", build_model(height=28, width=24, channels=1, labels=GRAY_LABELS))
    repository = write_repository(model, tmp_path / "repository")
    assert repository.model.relative_to(tmp_path).as_posix() == "repository/classifier/1/model.onnx"
    assert repository.model.read_bytes() == model.read_bytes()
    assert repository.labels.read_text() == "zero\none\ntwo\nthree\nfour\n"
    config = repository.config.read_text()
    for line in ('platform: "onnxruntime_onnx"', "max_batch_size: 32", 'name: "image"', "data_type: TYPE_UINT8",
                 "dims: [ 28, 24, 1 ]", 'name: "logits"', "data_type: TYPE_FP32", "dims: [ 5 ]",
                 'label_filename: "labels.txt"', "max_queue_delay_microseconds: 2000", "kind: KIND_CPU",
                 "kind: KIND_GPU"):
        assert line in config, line
    expected = TritonModel.from_onnx(onnx.load(model)).config()
    assert expected["input"] == [{"name": "image", "data_type": "TYPE_UINT8", "dims": ["28", "24", "1"]}]
    assert expected["output"][0]["dims"] == ["5"]


@pytest.mark.slow
def test_tritons_protobuf_accepts_the_config_and_catches_every_wrong_field(tmp_path, tritonclient_python):
    model = write_model(tmp_path / "model.onnx", seed=0)
    repository = write_repository(model, tmp_path / "repository")
    assert check_repository(Repository(repository.root), tritonclient_python) == []
    good = repository.config.read_text()
    edits = {
        "dims: [ 32, 32, 3 ]": ("dims: [ 32, 32, 1 ]", 'input[0].dims[2]: config.pbtxt has "1", expected "3"'),
        "data_type: TYPE_FP32": ("data_type: TYPE_FP16", 'output[0].data_type: config.pbtxt has "TYPE_FP16"'),
        "max_batch_size: 32": ("max_batch_size: 0", "max_batch_size: config.pbtxt has null, expected 32"),
        'platform: "onnxruntime_onnx"': ('platform: "tensorrt_plan"', 'platform: config.pbtxt has "tensorrt_plan"'),
        "kind: KIND_GPU": ("kind: KIND_CPU",
                           'instance_group[1].kind: config.pbtxt has "KIND_CPU", expected "KIND_GPU"'),
        "label_filename": ("label_file_name", "Triton's protobuf refuses config.pbtxt"),  # misspelt: not Triton's
    }
    for old, (new, problem) in edits.items():
        assert old in good, old
        repository.config.write_text(good.replace(old, new))
        problems = check_repository(Repository(repository.root), tritonclient_python)
        assert len(problems) == 1 and problems[0].startswith(problem), (old, problems)
    repository.config.write_text(good)
    repository.labels.write_text(repository.labels.read_text().replace("cat", "kitten"))
    (problem,) = check_repository(Repository(repository.root), tritonclient_python)
    assert problem.startswith("labels.txt holds") and "'kitten'" in problem


@pytest.mark.slow
def test_the_triton_row_of_the_table(model, tritonclient_python, monkeypatch, capsys):
    monkeypatch.setenv("TRITONCLIENT_VENV", str(tritonclient_python.parent.parent))
    assert targets.main(["--model", str(model), "--skip", "ort", "openvino", "browser", "--latency-runs", "5"]) == 0
    assert "| Triton / KServe repository | `config.pbtxt` |" in capsys.readouterr().out
    (model.parent / "repository/classifier/labels.txt").write_text("wrong\n")
    # the command writes the repository afresh: a stale or edited one is replaced, then checked
    assert targets.main(["--model", str(model), "--skip", "ort", "openvino", "browser", "--latency-runs", "5"]) == 0
    assert (model.parent / "repository/classifier/labels.txt").read_text().startswith("airplane\n")
