"""kill -9 of training runs (reliability/kill_training.py) in its smoke size: each framework's runs are killed,
resumed and meet every goal, and the markdown shows the goals."""

from __future__ import annotations

from pathlib import Path

import pytest

from cifar10_pipeline.model import frameworks
from reliability import kill_training

TF_PYTHON = Path(frameworks.get("tensorflow").python())


@pytest.mark.slow
def test_kill_training_smoke_meets_its_goals():
    if not TF_PYTHON.exists():
        pytest.fail(f"the TensorFlow interpreter {TF_PYTHON} is missing: make install-tf, or set TF_VENV")
    figures = kill_training.run(smoke=True)
    assert figures["smoke"] is True and figures["goals"]
    assert [g["goal"] for g in figures["goals"] if not g["met"]] == [], figures
    text = kill_training.markdown(figures)
    assert all(g["goal"] in text for g in figures["goals"]) and "**no**" not in text
