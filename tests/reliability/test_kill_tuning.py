"""kill -9 of one of two tuning workers on a PostgreSQL study (reliability/kill_tuning.py) in its smoke size: the
survivor finishes the study, meeting every goal, and the markdown shows the goals."""

from __future__ import annotations

import pytest

from reliability import kill_tuning


@pytest.mark.slow
def test_kill_tuning_smoke_meets_its_goals():
    figures = kill_tuning.run(smoke=True)
    assert figures["smoke"] is True and figures["goals"]
    assert [g["goal"] for g in figures["goals"] if not g["met"]] == [], figures
    text = kill_tuning.markdown(figures)
    assert all(g["goal"] in text for g in figures["goals"]) and "**no**" not in text
