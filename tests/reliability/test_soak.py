"""Soak: the smoke run's load gets no error of all the requests it sent, every answer is the model's own, and the
server's memory does not grow."""

from __future__ import annotations

import pytest


@pytest.mark.slow
def test_soak_has_no_error_and_no_memory_growth(serving_smoke):
    soak = serving_smoke.figures["soak"]
    load = soak["load"]
    assert load["sent"] > 0 and load["failed"] == 0 and load["unanswered"] == 0 and load["drained"]
    assert load["requests"] == load["sent"] == sum(t["count"] for t in load["bodies"])  # every request answered
    assert soak["wrong_answers"] == 0 and soak["wrong_answer_reasons"] == []
    assert 0 < soak["load"]["p50_ms"] <= soak["load"]["p99_ms"]
    assert len(soak["rss_samples"]) >= 5 and all(s["rss_mb"] > 10 for s in soak["rss_samples"])
    assert soak["rss_growth_mb"] <= 20
    assert soak["worker_pid"]["before"] == soak["worker_pid"]["after"] and soak["good_request_after"]
