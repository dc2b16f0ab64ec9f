"""The training benchmark's smoke mode: it runs the real trainer end to end and writes its figures."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


@pytest.mark.slow
def test_training_benchmark_smoke_writes_json_and_markdown(tmp_path):
    result = subprocess.run([sys.executable, "-m", "benchmarks.train", "--frameworks", "torch", "--smoke",
                             "--out", str(tmp_path)], capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / "train.json").read_text())
    (accuracy,) = report["accuracy"]
    assert accuracy["framework"] == "torch" and accuracy["epochs"] == 1 and report["smoke"]
    assert 0 <= accuracy["test_accuracy"] <= 1 and accuracy["train_seconds"] > 0
    assert accuracy["config"] == "benchmarks/configs/fashion-mnist-cpu.json"
    (throughput,) = report["throughput"]
    assert throughput["images_per_second"] > 0
    assert throughput["seconds_per_cifar10_epoch"] == pytest.approx(50_000 / throughput["images_per_second"], rel=0.01)
    markdown = (tmp_path / "train.md").read_text()
    assert "| torch" in markdown and "Smoke mode" in markdown


def test_training_benchmark_refuses_an_unknown_framework(tmp_path):
    result = subprocess.run([sys.executable, "-m", "benchmarks.train", "--frameworks", "jax", "--out", str(tmp_path)],
                            capture_output=True, text=True)
    assert result.returncode == 2 and "unknown frameworks ['jax']" in result.stderr
