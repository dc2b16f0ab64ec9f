"""The ORT format file: onnxruntime's converter makes model.ort and its operator config beside the model; the .ort
loads and answers as the ONNX file does, and a file the converter cannot read fails with the reason."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

from cifar10_pipeline.export.targets.ort_format import OrtFormatError, ort_paths, write_ort_format


def test_the_ort_file_answers_as_the_onnx_file(model):
    written = write_ort_format(model)
    assert written == ort_paths(model)
    assert (written.model.name, written.operators.name) == ("model.ort", "model.required_operators_and_types.config")
    images = np.random.default_rng(0).integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)
    onnx_logits = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"]).run(None, {"image": images})[0]
    ort_session = ort.InferenceSession(str(written.model), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(ort_session.run(None, {"image": images})[0], onnx_logits, rtol=1e-6, atol=1e-6)
    assert written.model.read_bytes()[4:8] == b"ORTM"  # the flatbuffer's identifier: a real ORT format file
    # the reduced build's list: the model's operators, with the types they run on (type reduction)
    operators = written.operators.read_text()
    assert 'Cast{"inputs": {"0": ["uint8_t"]}' in operators and "ReduceMean" in operators


def test_a_file_the_converter_cannot_read_fails_and_writes_nothing(tmp_path):
    broken = tmp_path / "model.onnx"
    broken.write_bytes(b"not a model")
    with pytest.raises(OrtFormatError, match="convert_onnx_models_to_ort failed"):
        write_ort_format(broken)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]
