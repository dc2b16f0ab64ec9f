"""The serving benchmark's smoke mode: every server under load, both engines, the footprint, its report."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.support.paths import REPO

pytestmark = pytest.mark.slow


def test_benchmark_smoke_mode_runs_and_reports(tmp_path):
    out = tmp_path / "bench"
    subprocess.run([sys.executable, "-m", "benchmarks.service", "--smoke", "--out", str(out)], cwd=REPO, check=True,
                   capture_output=True, timeout=600)
    report = json.loads((out / "service.json").read_text())
    servers = [row["server"] for row in report["load"]]
    assert servers == ["onnxruntime, batching on", "onnxruntime, batching off",
                       "onnxruntime, batching off, 2 worker processes", "naive: Flask + torch eager, batch 1"]
    for row in report["load"]:
        assert row["requests"] > 0 and row["failed"] == 0 and row["p50_ms"] <= row["p99_ms"], row
    assert report["load"][0]["mean_batch_size"] >= 1 and report["load"][1]["mean_batch_size"] == 1
    assert report["load"][2]["mean_batch_size"] == 1  # /metrics adds up both workers' batches
    assert [row["engine"].split()[0] for row in report["engines"]] == ["torch", "onnxruntime"]
    assert report["engines"][0]["max_abs_logit_diff"] < 1e-3  # the same weights in both engines
    assert report["footprint"]["start_to_ready_s"] > 0
    markdown = (out / "service.md").read_text()
    assert "| onnxruntime, batching on |" in markdown and "Goal >= 3x the naive baseline" in markdown
