"""The TTA benchmark (``benchmarks.tta``): one trained model scored with each kind of view, its own among them."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from cifar10_pipeline.training.loop import train
from tests.support.runs import tiny_config


@pytest.mark.slow
def test_the_tta_benchmark_scores_one_model_three_ways_and_its_own_views_as_the_run_did(tmp_path):
    result = train(tiny_config(tmp_path, tta_shift=1, epochs=1), "torch")
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, "-m", "benchmarks.tta", "--runs", str(result.run.path), "--out", str(out),
                           "--smoke"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    (row,) = json.loads((out / "tta.json").read_text())["runs"]
    assert row["images"] == 1000 and row["shift"] == 1 and row["own_views"] == {"mirror": True, "shift": 1}
    # the run's own model is the mirror with the shifts: the loop's final evaluation scored the same views
    assert row["accuracy"]["mirror_shifts"] == pytest.approx(result.accuracy, abs=1e-9)
    assert len({round(v, 6) for v in row["accuracy"].values()}) > 1  # the views change the answers
    markdown = (out / "tta.md").read_text()
    assert "| `tiny` | 0 | 1000 |" in markdown and "(1 px)" in markdown and "smoke" in markdown


def test_the_tta_benchmark_refuses_what_is_not_a_finished_pytorch_run(tmp_path):
    done = subprocess.run([sys.executable, "-m", "benchmarks.tta", "--runs", str(tmp_path), "--out", str(tmp_path)],
                          capture_output=True, text=True)
    assert done.returncode == 2 and "no model.pt" in done.stderr
