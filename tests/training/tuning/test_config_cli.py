"""The command line: bad settings failing cleanly, the dry run, the TensorFlow trainer through the same flags."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from cifar10_pipeline.model import frameworks
from cifar10_pipeline.training.config import TrainConfig
from cifar10_pipeline.training.tuning.__main__ import main
from cifar10_pipeline.training.tuning.config import DRY_RUN_TRIALS
from tests.support.paths import REPO
from tests.training.tuning.conftest import SMALL, TRIAL_LINE, cli


@pytest.mark.parametrize("args, message", [
    (["--storage", "postgresql://tune:secret@127.0.0.1:1/x"],
     "cannot open storage 'postgresql://tune:***@127.0.0.1:1/x'"),
    (["--storage", "studies/x.db"], "storage 'studies/x.db' is neither a database URL"),
    (["--workers", "2", "--storage", "sqlite:///x.db"], "SQLite locks under parallel writers"),
    (["--val-fraction", "0"], "val_fraction must be > 0, got 0.0"),
    (["--runs-dir", "elsewhere"], "--runs-dir: the tuner names trial runs itself"),
    (["--study-name", "a/b"], "study name 'a/b' must be"),
    (["--trials", "-1"], "trials=-1 must be >= 0"),
    (["--lr", "0.1", "--params", "missing.json"], "params file 'missing.json' does not exist"),
])
def test_bad_settings_and_unreachable_database_exit_non_zero_and_write_nothing(tmp_path, capsys, monkeypatch,
                                                                              args, message):
    monkeypatch.chdir(tmp_path)
    code = main([*SMALL, *args])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and "secret" not in err
    assert list(tmp_path.iterdir()) == []  # no studies/, no best_params.json


@pytest.mark.slow
def test_dry_run_writes_everything_into_a_fresh_temporary_directory(tmp_path):
    result = subprocess.run(cli("--dry-run", "--no-final-test"), cwd=tmp_path, capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.returncode == 0, result.stderr[-2000:]
    best = Path(re.search(r"params written to (\S+)", result.stdout).group(1))
    assert best.parent != tmp_path and best.parent.name.startswith("tune-dry-run-")
    assert len(TRIAL_LINE.findall(result.stdout)) == DRY_RUN_TRIALS
    assert TrainConfig.from_json(best).width == 8
    assert list(tmp_path.iterdir()) == []
    shutil.rmtree(best.parent)


@pytest.mark.slow
def test_tensorflow_trainer_tunes_through_the_same_cli(tmp_path):
    python = Path(frameworks.get("tensorflow").python())
    if not python.exists():
        pytest.fail(f"the TensorFlow environment's {python} is missing: create it (make install-tf) or point "
                    f"TF_VENV at one, to test tune-tf")
    result = subprocess.run(cli("--framework", "tensorflow", "--dry-run", "--best", str(tmp_path / "best.json"),
                                python=str(python)), cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    studies = Path(re.search(r"in sqlite:///(\S+)/tensorflow-synthetic\.db", result.stdout).group(1))
    report = json.loads((studies / "tensorflow-synthetic" / "report.json").read_text())
    assert report["framework"] == "tensorflow" and report["counts"]["complete"] == DRY_RUN_TRIALS
    assert 0 <= report["final_test"]["accuracy"] <= 1
    assert TrainConfig.from_json(tmp_path / "best.json").epochs == 2
    shutil.rmtree(studies)
