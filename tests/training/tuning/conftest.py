"""Helpers of the tuner tests: a small training shape, the tuner's command line, search-space overrides, studies.

The tests cover search space checks, pruning, best params the trainers accept, resume after a kill, workers
sharing one study on a journal file and on a real PostgreSQL server, bad input failing cleanly, the benchmark.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import optuna
from optuna.trial import TrialState

from cifar10_pipeline.training.tuning.space import DEFAULT_SPACE
from cifar10_pipeline.training.tuning.study import open_storage

# 2000 synthetic images, width 8, 3 epochs: small enough for a study of several trials in a test, and a good lr
# learns far above chance. float32: these tests are about the tuner, and this tiny width-8 net's 3-epoch accuracy
# swings with the arithmetic as much as with the seed (bfloat16 is the auto precision on CPUs with native
# bfloat16); float32 keeps the assertions on the same numbers on every CPU
SMALL = ["--dataset", "synthetic", "--epochs", "3", "--width", "8", "--batch-size", "64",
         "--max-train-samples", "2000", "--max-test-samples", "500", "--precision", "float32"]
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
TRIAL_LINE = re.compile(r"^trial (\d+) (COMPLETE|PRUNED)", re.M)


def space_file(directory: Path, **params) -> Path:
    """A search-space override that drops every default parameter except ``params``."""
    defaults = json.loads(DEFAULT_SPACE.read_text())
    path = directory / "space.json"
    path.write_text(json.dumps({**{name: None for name in defaults}, **params}))
    return path


def cli(*args: str, python: str = sys.executable) -> list[str]:
    return [python, "-m", "cifar10_pipeline.training.tuning", *args]


def finished_trials(study: optuna.Study) -> dict[int, tuple]:
    return {t.number: (t.state, t.value, t.params) for t in study.get_trials(states=FINISHED)}


def journal_study(tmp_path: Path, name: str = "s") -> optuna.Study:
    storage = open_storage(str(tmp_path / f"{name}.journal"))
    return optuna.create_study(study_name=name, storage=storage, direction="maximize",
                               pruner=optuna.pruners.NopPruner())
