"""The golden self-test refuses a model whose answer cannot be right, whatever its metadata claims: logits of
the wrong shape, NaN or infinite logits, a parity report whose golden entry is malformed, and logits off by more
than the file's own tolerance (float and INT8 files, at the boundary). A refused model is never ready."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from cifar10_pipeline.contract import decode_metadata, golden_reference
from tests.support.onnx_edits import after_logits, dropped_class
from tests.support.onnx_models import build_model, write_model, write_quantized_model

F32 = np.float32
BROKEN_OUTPUTS = {
    # name: (edit of a good model, a part of the refusal)
    # 9 logits for 10 labels, found only by running the model: no declared or inferred dim gives it away
    "nine-classes-for-ten-labels": (lambda m: dropped_class(m, 4), "golden logits have shape (2, 9), expected (2, 10)"),
    "nan-logits": (lambda m: after_logits(m, "Add", np.full(10, np.nan, F32)), "golden logits are not all finite"),
    "infinite-logits": (lambda m: after_logits(m, "Mul", np.full(10, np.inf, F32)), "golden logits are not all finite"),
    "one-infinite-logit": (lambda m: after_logits(m, "Add", np.where(np.arange(10) == 4, np.inf, 0).astype(F32)),
                           "golden logits are not all finite"),
}


def refusal(make_app, path) -> str:
    response = make_app(model_path=path).test_client().get("/readyz")
    assert response.status_code == 503 and response.json["ready"] is False
    return response.json["error"]


@pytest.mark.parametrize("case", BROKEN_OUTPUTS)
def test_a_model_answering_wrong_shapes_or_non_finite_logits_is_refused(make_app, tmp_path, case):
    edit, message = BROKEN_OUTPUTS[case]
    path = tmp_path / "broken.onnx"
    # golden={}: no logits to compare with, so only the self-test's own checks stand between it and serving
    onnx.save(edit(build_model(seed=3, golden={})), path)
    error = refusal(make_app, path)
    assert "golden self-test" in error and message in error


MALFORMED_GOLDEN = {
    "not-an-object": ([1, 2], "parity['golden'] must be a JSON object, got [1, 2]"),
    "seed-not-a-number": ({"seed": "zero"}, "parity['golden'] is malformed: invalid literal for int()"),
    "batch-null": ({"batch": None}, "parity['golden'] is malformed: int() argument must be"),
    "logits-not-numbers": ({"logits": [["a"] * 10] * 2}, "parity['golden'] is malformed: could not convert"),
    "logits-ragged": ({"logits": [[0.0] * 10, [0.0] * 3]}, "parity['golden'] is malformed: setting an array"),
    "logits-of-another-shape": ({"batch": 2, "logits": [[0.0] * 9] * 2},
                                "parity golden logits have shape (2, 9), the model gives (2, 10)"),
    "atol-not-a-number": ({"atol": "tight"}, "parity['golden'] is malformed: could not convert"),
    # in range checks: each would let the self-test pass having compared nothing, or crash the load
    "batch-zero": ({"batch": 0}, "parity['golden'] is malformed: batch=0 must be from 1 to 64"),
    "batch-huge": ({"batch": 10**9}, "parity['golden'] is malformed: batch=1000000000 must be from 1 to 64"),
    "seed-negative": ({"seed": -1}, "parity['golden'] is malformed: seed=-1 must be from 0 to 4294967295"),
    "atol-negative": ({"atol": -1}, "parity['golden'] is malformed: atol=-1.0 must be a finite number >= 0"),
}


@pytest.mark.parametrize("case", MALFORMED_GOLDEN)
def test_a_malformed_golden_entry_is_refused_saying_what_is_wrong(make_app, tmp_path, case):
    golden, message = MALFORMED_GOLDEN[case]
    path = write_model(tmp_path / "malformed.onnx", seed=3, golden=golden)
    assert message in refusal(make_app, path)


@pytest.mark.parametrize("kind", ["float", "int8"])
@pytest.mark.parametrize("shift, ready", [(0.5, True), (2.0, False)])
def test_the_golden_tolerance_holds_at_its_boundary(make_app, tmp_path, kind, shift, ready):
    # the file's logits moved by `shift` times its own golden atol: half of it is served, twice it refused (a
    # tolerance loosened or ignored in the self-test fails here)
    path = tmp_path / "model.onnx"
    if kind == "int8":
        write_quantized_model(path, seed=3)
    else:
        write_model(path, seed=3)
    model = onnx.load(path)
    metadata, _ = decode_metadata({p.key: p.value for p in model.metadata_props})
    atol = golden_reference(metadata)["atol"]
    onnx.save(after_logits(model, "Add", np.where(np.arange(10) == 4, shift * atol, 0).astype(F32)), path)
    response = make_app(model_path=path).test_client().get("/readyz")
    assert (response.status_code == 200) == ready, response.json
    if not ready:
        assert f"golden logits differ from the {'quantization' if kind == 'int8' else 'parity'} report by" in \
            response.json["error"]
