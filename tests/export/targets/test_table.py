"""The agreement table's gate on the whole synthetic test set (2,000 images): a float target passes at 99.9%
agreement with the reference and fails below it, a target that cannot run fails its row, and every figure is the
target's own."""

from __future__ import annotations

import contextlib
import json

import numpy as np
import onnx
import pytest

from cifar10_pipeline.export.gates import OrtRunner
from cifar10_pipeline.export.targets import table
from cifar10_pipeline.export.targets.__main__ import load_test_set
from cifar10_pipeline.export.targets.table import EngineTarget, Kind
from cifar10_pipeline.export.writer import check_model


class Flipping:
    """``runner`` with the top class of the given images moved to another class (its logits rolled by one)."""

    def __init__(self, runner: OrtRunner, images: np.ndarray):
        self.name, self.runner = "flipping", runner
        self.flipped = {image.tobytes() for image in images}

    def infer(self, feeds):
        logits = self.runner.infer(feeds)["logits"].copy()
        for i, image in enumerate(feeds["image"]):
            if image.tobytes() in self.flipped:
                logits[i] = np.roll(logits[i], 1)
        return {"logits": logits}


def test_the_gate_holds_float_targets_to_99_9_percent_of_the_test_set(model):
    data = load_test_set(check_model(onnx.load(model)), None)
    assert len(data.images) == 2000  # the synthetic test set: 2 images are 0.1%

    def target(name, flipped):
        def runner():
            return contextlib.nullcontext(Flipping(OrtRunner(model.read_bytes()), data.images[:flipped]))
        return EngineTarget(name, Kind.FLOAT, model, runner)

    def broken():
        raise RuntimeError("no such engine")

    engines = [EngineTarget("reference", Kind.REFERENCE, model,
                            lambda: contextlib.nullcontext(OrtRunner(model.read_bytes()))),
               target("two flipped", 2), target("three flipped", 3), EngineTarget("broken", Kind.FLOAT, model, broken)]
    reference, two, three, cannot = table.rows_of(engines, [], data, runs=5)

    assert reference.passed and reference.top1_agreement == 1.0 and reference.max_abs_diff == 0.0
    assert reference.test_accuracy == pytest.approx(
        float((OrtRunner(model.read_bytes()).infer({"image": data.images})["logits"].argmax(1) == data.labels).mean()))
    assert two.top1_agreement == pytest.approx(0.999) and two.passed
    assert three.top1_agreement == pytest.approx(0.9985)
    assert three.failures == ["top-1 agreement 99.85% with the reference < 99.9%"]
    assert two.max_abs_diff > 0 and two.p50_ms > 0 and two.p99_ms >= two.p50_ms
    assert cannot.failures == ["did not run: RuntimeError: no such engine"] and cannot.top1_agreement is None

    figures = table.report([reference, two, three, cannot], model, "synthetic", data)
    assert not figures["passed"] and [row["passed"] for row in figures["rows"]] == [True, True, False, False]
    json.dumps(figures)  # JSON as it is written
    text = table.markdown(figures)
    assert "| two flipped | `model.onnx` |" in text and "| 99.90% |" in text
    assert "FAIL: top-1 agreement 99.85%" in text and "| broken |" in text


def test_an_int8_target_is_held_to_its_accuracy_gate_not_to_agreement(model):
    data = load_test_set(check_model(onnx.load(model)), None)
    reference_accuracy = 0.5
    row = table.Row("int8", Kind.INT8, "model.int8.onnx", 1, "engine", top1_agreement=0.9)
    labels_right = np.eye(10, dtype=np.float32)[data.labels]  # every image right: 100%, 50 points above
    table.gate(row, labels_right, reference_accuracy, data, max_accuracy_drop=0.3)
    assert row.passed  # 90% agreement is no failure for an INT8 file
    wrong = np.roll(labels_right, 1, axis=1)  # every image wrong: 0%
    table.gate(row, wrong, reference_accuracy, data, max_accuracy_drop=0.3)
    assert row.failures == ["test accuracy 0.00% is 50.00 points below the float model's 50.00%; at most 0.3 allowed"]
