"""Loading a model file: a checked, self-tested session whose id is the sha256 of the bytes it was made from, or a
ContractError saying why not; the service's session options."""

from __future__ import annotations

import pytest

from cifar10_pipeline.contract import ContractError
from cifar10_pipeline.inference.runtime import LoadedModel, load_session, session_options
from tests.support.api import sha256
from tests.support.onnx_models import reference_logits, write_model
from tests.support.v2 import pixels

CPU = ["CPUExecutionProvider"]


def test_a_good_file_loads_with_its_id_info_and_self_test(model_path):
    model = load_session(model_path, CPU, 1)
    assert isinstance(model, LoadedModel) and model.model_id == sha256(model_path) and model.path == model_path
    assert model.info.input_shape == (32, 32, 3) and model.providers == ("CPUExecutionProvider",)
    assert model.self_test["compared_to_parity"] is True
    images = pixels(3)
    assert model.run(images).shape == (3, 10)
    assert abs(model.run(images) - reference_logits(images, seed=0)).max() < 1e-4


@pytest.mark.parametrize("make, message", [
    (lambda path: None, "cannot read it"),
    (lambda path: path.write_bytes(b"not an onnx file"), "onnxruntime cannot load it"),
    (lambda path: write_model(path, seed=1, input_name="pixels"), "inputs are ['pixels']"),
    (lambda path: write_model(path, seed=1, height=8, width=8, channels=2), "input_channels=2, the service decodes"),
])
def test_a_file_that_cannot_be_served_is_refused_saying_why(tmp_path, make, message):
    path = tmp_path / "model.onnx"
    make(path)
    with pytest.raises(ContractError) as e:
        load_session(path, CPU, 1)
    assert message in str(e.value)


def test_session_options_pin_the_threads_and_stop_spinning():
    options = session_options(3)
    assert options.intra_op_num_threads == 3
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
