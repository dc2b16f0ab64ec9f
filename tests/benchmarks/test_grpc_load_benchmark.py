"""The gRPC load benchmark's smoke mode: both protocols at each concurrency on both server configurations, logits
checked, its report."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.support.paths import REPO

pytestmark = pytest.mark.slow


def test_benchmark_smoke_mode_runs_and_reports(tmp_path):
    out = tmp_path / "bench"
    subprocess.run([sys.executable, "-m", "benchmarks.grpc_load", "--smoke", "--out", str(out)], cwd=REPO,
                   check=True, capture_output=True, timeout=600)
    report = json.loads((out / "grpc_load.json").read_text())
    assert list(report["servers"]) == ["batching off (CPU default)", "batching on (32)"]
    assert report["max_abs_logit_diff"] < 1e-4  # both ports answer onnxruntime's logits
    for rows in report["servers"].values():
        assert [(row["protocol"], row["concurrency"]) for row in rows] == [
            (protocol, c) for c in (1, 16, 64) for protocol in ("HTTP", "gRPC")]
        for row in rows:
            assert row["requests"] > 0 and row["failed"] == 0 and row["p50_ms"] <= row["p99_ms"], row
            assert row["server_cpu_ms_per_request"] > 0 and row["client_cpu_ms_per_request"] > 0
    assert "| gRPC | 64 |" in (out / "grpc_load.md").read_text()
