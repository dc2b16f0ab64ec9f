"""Swaps: during the smoke run's load, every broken model file is refused and every good one served."""

from __future__ import annotations

import pytest


@pytest.mark.slow
def test_swaps_refuse_every_broken_file_and_serve_every_good_one(serving_smoke):
    swaps = serving_smoke.figures["swaps"]
    rows = swaps["replacements"]
    assert len(rows) == 5 and swaps["load"]["failed"] == 0 and swaps["load"]["requests"] > 0
    broken = [row for row in rows if not row["good"]]
    assert [row["kind"].split()[0] for row in broken] == ["truncated", "half"]
    assert all(row["outcome"] == "refused, previous kept" and row["ok"] for row in broken)
    assert all(row["outcome"] == "served" and row["ok"] for row in rows if row["good"])
    assert rows[-1]["kind"].startswith("good, the rest of the half-written file")
