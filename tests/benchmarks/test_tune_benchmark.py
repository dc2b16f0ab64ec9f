"""The tuning benchmark (benchmarks/tune.py), in its smoke size."""

from __future__ import annotations

import json

import pytest


@pytest.mark.slow
def test_benchmark_smoke_writes_json_and_markdown(tmp_path):
    from benchmarks import tune as bench

    assert bench.main(["--smoke", "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "tune.json").read_text())
    assert result["smoke"] and result["shape"]["dataset"] == "synthetic"
    for key in ("baseline", "tuned"):
        assert 0 <= result[key]["accuracy"] <= 1 and result[key]["train_seconds"] > 0
        assert result[key]["seeds"] == [0] and result[key]["accuracy"] == result[key]["accuracies"][0]
    for pruner in ("median", "none"):
        counts = result["pruning"][pruner]["trials"]
        assert counts["complete"] + counts["pruned"] == bench.SMOKE_TRIALS
        assert result["pruning"][pruner]["mean_trial_seconds"] > 0
    assert set(result["goals"]) == {"tuned_beats_default", "training_time_ratio", "same_training_time",
                                    "time_per_trial_ratio", "pruning_cuts_time_per_trial"}
    markdown = (tmp_path / "tune.md").read_text()
    assert "| default |" in markdown and "pruning cuts the time per trial" in markdown
