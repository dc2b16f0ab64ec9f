"""The kill -9 stress scenarios (benchmarks/stress/kill_training.py, kill_tuning.py) in their smoke size: each
kills, recovers and meets every goal, and its markdown shows the goals."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from cifar10_pipeline.model import frameworks

TF_PYTHON = Path(frameworks.get("tensorflow").python())


@pytest.mark.slow
@pytest.mark.parametrize("name", ["kill_training", "kill_tuning"])
def test_kill_scenario_smoke_meets_its_goals(name):
    if name == "kill_training" and not TF_PYTHON.exists():
        pytest.fail(f"the TensorFlow interpreter {TF_PYTHON} is missing: make install-tf, or set TF_VENV")
    scenario = importlib.import_module(f"benchmarks.stress.{name}")
    figures = scenario.run(smoke=True)
    assert figures["smoke"] is True and figures["goals"]
    assert [g["goal"] for g in figures["goals"] if not g["met"]] == [], figures
    text = scenario.markdown(figures)
    assert all(g["goal"] in text for g in figures["goals"]) and "**no**" not in text
