"""The rollout benchmark's smoke mode, run as a command: a rollout and a replica kill under load behind HAProxy
(containers: root, podman, the CPU image), every goal judged and shown in its table, BENCHMARKS.md left alone.
The reading of HAProxy's log is tested in tests/harness/test_rollout.py, the scenarios in
tests/deploy/test_replicas.py."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from harness.report import BENCHMARKS_MD
from tests.support.paths import REPO

pytestmark = [pytest.mark.containers, pytest.mark.slow]
GOALS = ["0 failed of every request sent during the rollout",
         "the load covers the whole rollout (a rollout that outlasts it fails)",
         "every answer from the old or the new model", "every replica ends on the new model",
         "the corrupt file refused, its replica keeps the old model",
         "no request routed to a replica that is not ready",
         "killed replica drained within the detection window (3 s), {small}-byte upload",
         "0 failed of every request sent when a replica is killed, {small}-byte upload",
         "killed replica drained within the detection window (3 s), {large}-byte upload",
         "0 failed of every request sent when a replica is killed, {large}-byte upload"]


def test_rollout_benchmark_smoke_meets_every_goal_and_reports_it(tmp_path):
    before = BENCHMARKS_MD.read_text()
    result = subprocess.run([sys.executable, "-m", "benchmarks.rollout", "--smoke", "--out", str(tmp_path)],
                            cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]  # 1 when a goal is missed
    report = json.loads((tmp_path / "rollout.json").read_text())
    roll, kill, large = report["rollout"], report["kill"], report["kill_large"]
    assert report["smoke"] and roll["replicas"] == 2 and roll["sent"] > 0 and roll["failed"] == 0
    assert roll["unanswered"] == 0 and roll["rollout_under_load"] and roll["answers_by_model"]["other"] == 0
    assert [(s["replica"], s["file"], s["swapped"]) for s in roll["steps"]] == [
        ("replica-1", "new", True), ("replica-2", "corrupt", False), ("replica-2", "new", True)]
    assert roll["corrupt_refused"] and roll["all_on_new_model"] and roll["routed_to_down_replica"] == 0
    for run in (kill, large):  # the second after the victim was started again
        assert run["victim"] == "replica-2" and run["detected_after_s"] <= run["detection_window_s"]
        assert run["sent"] > 0 and run["failed"] == 0 and run["unanswered"] == 0 and run["client_aborted"] == 0
    assert large["upload_bytes"] > 16 * 1024 > kill["upload_bytes"]
    table = (tmp_path / "rollout.md").read_text()
    sizes = {"small": kill["upload_bytes"], "large": large["upload_bytes"]}
    assert all(f"| {goal.format(**sizes)} |" in table for goal in GOALS) and "**no**" not in table
    assert "| replica-2 | corrupt |" in table and "requests by replica: replica-1 " in table
    assert BENCHMARKS_MD.read_text() == before
