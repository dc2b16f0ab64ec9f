"""The tuning benchmark (benchmarks/tune.py), run as a command in its smoke size."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from harness.report import BENCHMARKS_MD
from tests.support.paths import REPO

SMOKE_TRIALS = 3  # per study in the smoke size (its --help says so)


@pytest.mark.slow
def test_benchmark_smoke_writes_json_and_markdown(tmp_path):
    before = BENCHMARKS_MD.read_text()
    done = subprocess.run([sys.executable, "-m", "benchmarks.tune", "--smoke", "--out", str(tmp_path)], cwd=REPO,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((tmp_path / "tune.json").read_text())
    assert result["smoke"] and result["shape"]["dataset"] == "synthetic"
    for key in ("baseline", "tuned"):
        assert 0 <= result[key]["accuracy"] <= 1 and result[key]["train_seconds"] > 0
        assert result[key]["seeds"] == [0] and result[key]["accuracy"] == result[key]["accuracies"][0]
    for pruner in ("median", "none"):
        counts = result["pruning"][pruner]["trials"]
        assert counts["complete"] + counts["pruned"] == SMOKE_TRIALS
        assert result["pruning"][pruner]["mean_trial_seconds"] > 0
    assert set(result["goals"]) == {"tuned_beats_default", "training_time_ratio", "same_training_time",
                                    "time_per_trial_ratio", "pruning_cuts_time_per_trial"}
    markdown = (tmp_path / "tune.md").read_text()
    assert "| default |" in markdown and "pruning cuts the time per trial" in markdown
    assert BENCHMARKS_MD.read_text() == before


def test_help_states_the_smoke_size():
    done = subprocess.run([sys.executable, "-m", "benchmarks.tune", "--help"], cwd=REPO, capture_output=True,
                          text=True, timeout=120, env={**os.environ, "COLUMNS": "500"})  # argparse: no line breaks
    assert done.returncode == 0 and f"{SMOKE_TRIALS} trials per study" in done.stdout
