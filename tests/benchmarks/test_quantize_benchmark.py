"""The INT8 benchmark runs end to end on a finished run in smoke mode (export with --quantize int8, throughput of
both files at batch 1 and 64, the profile) and leaves BENCHMARKS.md alone."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from harness.report import BENCHMARKS_MD
from tests.support.paths import REPO


@pytest.mark.slow
def test_quantize_benchmark_smoke_times_both_files_at_both_batches(trained, tmp_path):
    before = BENCHMARKS_MD.read_text()
    result = subprocess.run([sys.executable, "-m", "benchmarks.quantize", "--run", str(trained.run.path), "--smoke",
                             "--out", str(tmp_path)], cwd=REPO, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / "quantize.json").read_text())
    assert report["smoke"] and report["framework"] == "torch" and report["dataset"] == "synthetic"
    assert [row["batch"] for row in report["rows"]] == [1, 64]
    for row in report["rows"]:
        assert min(row["float_cpu"], row["int8_cpu"], row["float_wall"], row["int8_wall"]) > 0
        assert row["speedup_cpu"] == pytest.approx(row["int8_cpu"] / row["float_cpu"])
        assert row["goal_met"] == (row["speedup_cpu"] >= 2)
    assert report["goal_met"] == all(row["goal_met"] for row in report["rows"])
    accuracy = report["accuracy"]
    assert accuracy["test_images"] == 2000 and 0.5 < accuracy["float"] <= 1 and accuracy["drop_points"] <= 0.3
    assert "QLinearConv" in report["profile"]["64"] and "int8" in report["profile"]["64"]["QLinearConv"]
    assert "float" in report["profile"]["1"]["Conv"]
    markdown = (tmp_path / "quantize.md").read_text()
    assert "| 64 |" in markdown and "Goal: INT8 >= 2x" in markdown
    assert BENCHMARKS_MD.read_text() == before


def test_quantize_benchmark_refuses_a_folder_that_is_not_a_run(tmp_path):
    result = subprocess.run([sys.executable, "-m", "benchmarks.quantize", "--run", str(tmp_path)],
                            cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 2 and "not a run directory" in result.stderr
