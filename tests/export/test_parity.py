"""Parity refuses a graph that disagrees with the framework, with every failing case reported."""

from __future__ import annotations

import pytest

from cifar10_pipeline.export.parity import OrtRunner, ParityError, Tolerance, check_parity
from tests.support.onnx_edits import tampered
from cifar10_pipeline.training.datasets import load_dataset


def test_parity_fails_on_a_tampered_graph_and_reports_every_case(trained, exporter):
    runner, model, _ = exporter.convert(trained.run)
    ds = load_dataset("synthetic")
    with pytest.raises(ParityError) as e:
        check_parity(runner, OrtRunner(tampered(model).SerializeToString()), ds.test_images[:1000],
                     ds.test_labels[:1000], log=lambda line: None)
    assert len(e.value.failures) >= 3  # real images and both random batches each fail
    assert all("max |diff|" in f or "top-1 agreement" in f for f in e.value.failures)
    assert not e.value.report["passed"] and e.value.report["max_abs_diff"] == pytest.approx(5, abs=1e-3)


def test_tolerances_are_configurable(trained, exporter):
    runner, model, _ = exporter.convert(trained.run)
    ds = load_dataset("synthetic")
    with pytest.raises(ParityError, match="max \\|diff\\|"):
        check_parity(runner, OrtRunner(model.SerializeToString()), ds.test_images[:1000], ds.test_labels[:1000],
                     Tolerance(max_abs_diff=0.0), log=lambda line: None)
