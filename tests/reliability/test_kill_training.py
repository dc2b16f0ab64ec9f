"""kill -9 of training runs (reliability/kill_training.py) in its smoke size: each framework's runs are killed,
resumed and meet every goal, and the markdown shows the goals; the kill point is chosen by watching the run, so it
lands after a checkpoint and before the last epoch ends however fast the machine, and a run that ended first is
not counted as killed."""

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


def test_the_kill_waits_for_a_checkpoint_and_the_drawn_epoch():
    # after 1 epoch, 4 in all, 2.0 s into the second
    assert kill_training.kill_point(0, False, 10.0, None, 1, 4, 2.0) == (None, None)
    assert kill_training.kill_point(1, False, 10.0, None, 1, 4, 2.0) == (None, None)  # no checkpoint yet
    assert kill_training.kill_point(1, True, 10.0, None, 1, 4, 2.0) == (12.0, None)
    assert kill_training.kill_point(1, True, 11.9, 12.0, 1, 4, 2.0) == (12.0, None)
    assert kill_training.kill_point(2, True, 12.0, 12.0, 1, 4, 2.0) == (12.0, "drawn")


def test_the_kill_comes_when_the_last_epoch_begins_if_the_drawn_moment_is_later():
    # a fast machine: the second and third epochs end before the drawn moment
    assert kill_training.kill_point(2, True, 10.5, 12.0, 1, 4, 2.0) == (12.0, None)
    assert kill_training.kill_point(3, True, 10.6, 12.0, 1, 4, 2.0) == (12.0, "last epoch began")
    assert kill_training.kill_point(2, True, 10.0, None, 1, 3, 9.0) == (19.0, "last epoch began")


def test_a_run_that_ended_its_last_epoch_before_the_kill_was_not_killed_mid_way():
    def kill(reached: int, finished: bool) -> dict:
        return {"finished_before_the_kill": finished, "epoch_reached": reached, "epochs": 3, "same_metrics": True,
                "epochs_redone": 0}

    report = {"frameworks": {"torch": {"uninterrupted": {"final_accuracy": 0.5},
                                       "kills": [kill(2, False), kill(3, False), kill(3, True)]}}}
    goals = {g["goal"]: g for g in kill_training.goals(report)}
    assert not goals["torch: runs killed mid-way"]["met"]
    assert goals["torch: runs killed mid-way"]["figure"].startswith("1 of 3 killed after a checkpoint")
