"""A study's results: plots, best params the trainer CLI accepts, report.json with the final test, and a re-run of
a finished study that runs nothing."""

from __future__ import annotations

import contextlib
import glob
import io
import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import optuna
import pytest
from optuna.trial import TrialState

from cifar10_pipeline.training.config import TrainConfig
from cifar10_pipeline.training.tuning.__main__ import main
from cifar10_pipeline.training.tuning.results import write_plots
from cifar10_pipeline.training.tuning.space import HYPERPARAMETERS
from tests.support.paths import REPO
from tests.training.tuning.conftest import FINISHED, SMALL, TRIAL_LINE, finished_trials, journal_study, space_file

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def run_main(argv: list[str]) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(argv)
    return code, out.getvalue()


def test_plots_need_two_complete_trials_for_importances(tmp_path, capsys):
    study = journal_study(tmp_path)
    study.enqueue_trial({"x": 0.3})
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)
    written = write_plots(study, tmp_path / "one")
    assert sorted(Path(p).name for p in written) == ["history.png", "intermediate_values.png"]
    assert "parameter importances need 2 complete trials, the study has 1" in capsys.readouterr().out
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    written = write_plots(study, tmp_path / "three")
    assert (tmp_path / "three" / "importances.png").read_bytes()[:8] == PNG_MAGIC
    assert len(written) == 3


@pytest.fixture(scope="module")
def pruned_study(tmp_path_factory):
    """Six trials whose lr is either hopeless (1e-4) or good (0.1), with a pruner set to prune at the 2nd epoch."""
    tmp = tmp_path_factory.mktemp("tune")
    space = space_file(tmp, lr={"type": "categorical", "choices": [0.0001, 0.1]})
    argv = [*SMALL, "--studies-dir", str(tmp / "studies"), "--study-name", "prune", "--trials", "6",
            "--space", str(space), "--pruner", "median", "--pruner-startup-trials", "1", "--pruner-warmup", "2",
            "--sampler-seed", "0", "--best", str(tmp / "best_params.json")]
    code, out = run_main(argv)
    study = optuna.load_study(study_name="prune", storage=f"sqlite:///{tmp / 'studies' / 'prune.db'}")
    return SimpleNamespace(code=code, out=out, argv=argv, tmp=tmp, study=study)


@pytest.mark.slow
def test_study_reaches_its_target_and_prunes_a_hopeless_trial(pruned_study):
    assert pruned_study.code == 0, pruned_study.out[-2000:]
    trials = pruned_study.study.get_trials()
    assert len(trials) == 6 and all(t.state in FINISHED for t in trials)
    pruned = [t for t in trials if t.state == TrialState.PRUNED]
    assert pruned, [(t.number, t.params, t.intermediate_values) for t in trials]
    for t in pruned:
        assert len(t.intermediate_values) < 3  # stopped before its last epoch
        assert t.value < pruned_study.study.best_value
    assert pruned_study.study.best_params == {"lr": 0.1}


@pytest.mark.slow
def test_best_params_hold_only_config_keys_and_the_trainer_cli_accepts_them(pruned_study, tmp_path):
    path = pruned_study.tmp / "best_params.json"
    best = json.loads(path.read_text())
    assert tuple(best) == HYPERPARAMETERS
    config = TrainConfig.from_json(path)
    assert (config.lr, config.epochs, config.width, config.batch_size) == (0.1, 3, 8, 64)
    assert f"params written to {path}" in pruned_study.out
    result = subprocess.run([sys.executable, "-m", "cifar10_pipeline.training", "--framework", "torch",
                             "--params", str(path), "--dataset", "synthetic", "--dry-run",
                             "--runs-dir", str(tmp_path / "runs")],
                            capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert Path(result.stdout.strip().splitlines()[-1].split(":")[0]).is_dir()


@pytest.mark.slow
def test_study_writes_plots_a_report_and_one_progress_line_per_trial(pruned_study):
    study_dir = pruned_study.tmp / "studies" / "prune"
    for name in ("history.png", "intermediate_values.png", "importances.png"):
        assert (study_dir / name).read_bytes()[:8] == PNG_MAGIC, name
    report = json.loads((study_dir / "report.json").read_text())
    best = pruned_study.study.best_trial
    assert (report["best_trial"], report["best_value"]) == (best.number, best.value)
    assert report["counts"]["complete"] + report["counts"]["pruned"] == 6
    assert 0.25 < report["final_test"]["accuracy"] <= 1.0  # lr 0.1 learns: well above chance (0.1)
    final_run = Path(report["final_test"]["run_dir"])
    assert json.loads((final_run / "run.json").read_text())["status"] == "finished"
    assert json.loads((final_run / "config.json").read_text())["val_fraction"] == 0.0  # the whole training set
    lines = {(int(n), state) for n, state in TRIAL_LINE.findall(pruned_study.out)}
    assert lines == {(t.number, t.state.name) for t in pruned_study.study.get_trials()}


@pytest.mark.slow
def test_rerunning_a_finished_study_runs_nothing_and_reuses_the_final_test(pruned_study):
    before = finished_trials(pruned_study.study)
    report = json.loads((pruned_study.tmp / "studies" / "prune" / "report.json").read_text())
    code, out = run_main(pruned_study.argv)
    assert code == 0
    assert finished_trials(pruned_study.study) == before
    assert not TRIAL_LINE.search(out) and "6/6 trials finished" in out
    assert f"{report['final_test']['accuracy']:.4f}" in out
    assert len(glob.glob(str(pruned_study.tmp / "studies" / "prune" / "runs" / "*" / "test-trial-*"))) == 1
