"""Swaps: during the smoke run's load, every broken model file is refused and every good one served, no request
sent fails, and every answer is the prediction of the good model it names."""

from __future__ import annotations

import pytest


@pytest.mark.slow
def test_swaps_refuse_every_broken_file_and_serve_every_good_one(serving_smoke):
    swaps = serving_smoke.figures["swaps"]
    rows = swaps["replacements"]
    load = swaps["load"]
    assert len(rows) == 5 and load["failed"] == 0 and load["unanswered"] == 0 and load["sent"] == load["requests"] > 0
    assert swaps["wrong_answers"] == 0
    # the answers came from more than one model: the load saw the swaps
    assert sum(count > 0 for count in swaps["right_answers_by_model"].values()) >= 2
    broken = [row for row in rows if not row["good"]]
    assert [row["kind"].split()[0] for row in broken] == ["truncated", "half"]
    assert all(row["outcome"] == "refused, previous kept" and row["ok"] for row in broken)
    assert all(row["outcome"] == "served" and row["ok"] for row in rows if row["good"])
    assert rows[-1]["kind"].startswith("good, the rest of the half-written file")
