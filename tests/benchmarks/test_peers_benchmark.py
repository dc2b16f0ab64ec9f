"""The peers benchmark's smoke mode with this service alone (no peer venvs): the onnxruntime ceiling, the service's
three endpoints under load, the goals, its report; BENCHMARKS.md is left alone."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from harness.report import BENCHMARKS_MD
from tests.support.paths import REPO


@pytest.mark.slow
def test_peers_benchmark_smoke_measures_the_ceiling_and_this_service(tmp_path):
    before = BENCHMARKS_MD.read_text()
    result = subprocess.run([sys.executable, "-m", "benchmarks.peers", "--smoke", "--servers", "service",
                             "--out", str(tmp_path)], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / "peers.json").read_text())
    assert report["smoke"] and report["concurrency"] == [1] and set(report["versions"]) == {"onnxruntime"}
    ceiling = report["ceiling"]
    assert ceiling["threads"] >= 1 and ceiling["images_per_s"] == max(ceiling["runs_images_per_s"]) > 0
    assert [row["server"] for row in report["load"]] == [
        "this service: /predict", "this service: /v2 infer, binary", "this service: /v2 infer, JSON"]
    for row in report["load"]:
        assert row["family"] == "service" and row["concurrency"] == 1
        assert row["requests"] > 0 and row["failed"] == 0 and 0 < row["p50_ms"] <= row["p99_ms"], row
        assert row["server_cpu_ms_per_request"] > 0
        assert row["fraction_of_ceiling"] == pytest.approx(row["requests_per_s"] / ceiling["images_per_s"])
    assert [server["server"] for server in report["servers"]] == ["service"]
    peers, shares = report["goals"][:2], report["goals"][2:]
    assert len(report["goals"]) == 4 and all(goal["goal"] and goal["detail"] for goal in report["goals"])
    assert [goal["met"] for goal in peers] == [None, None]  # no peer measured
    assert all(isinstance(goal["met"], bool) and goal["fraction"] > 0 for goal in shares)
    markdown = (tmp_path / "peers.md").read_text()
    assert "| this service: /v2 infer, binary | 1 |" in markdown and "not measured" in markdown
    assert BENCHMARKS_MD.read_text() == before
