"""A tuning study in MLflow, read back through the client: one parent run for the study, its trials as child runs
(a pruned one ended KILLED and tagged PRUNED), the same parent for a re-run of the command, and the study's results
on the parent."""

from __future__ import annotations

import contextlib
import io

import optuna
import pytest

from cifar10_pipeline.training.tuning.__main__ import main
from cifar10_pipeline.training.tuning.study import PARENT_ATTR
from tests.tracking.conftest import client
from tests.training.tuning.conftest import SMALL, space_file


@pytest.mark.slow
def test_a_study_is_a_parent_run_with_its_trials_as_children(framework, tmp_path, monkeypatch):
    store = tmp_path / "store"
    monkeypatch.setenv("CIFAR10_TRACKING", "on")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{store / 'mlflow.db'}")
    store.mkdir()
    space = space_file(tmp_path, lr={"type": "categorical", "choices": [0.0001, 0.1]})
    argv = [*SMALL, "--framework", framework.name, "--studies-dir", str(tmp_path / "studies"), "--study-name", "s",
            "--space", str(space), "--pruner", "median", "--pruner-startup-trials", "1", "--pruner-warmup", "2",
            "--no-final-test", "--best", str(tmp_path / "best_params.json")]
    with contextlib.redirect_stdout(io.StringIO()):
        assert main([*argv, "--trials", "1"]) == 0  # the base config, lr 0.1
        study = optuna.load_study(study_name="s", storage=f"sqlite:///{tmp_path / 'studies' / 's.db'}")
        study.enqueue_trial({"lr": 0.0001})  # hopeless: pruned after its 2nd epoch
        assert main([*argv, "--trials", "2"]) == 0  # a re-run: the same parent
    states = {t.number: t.state.name for t in optuna.load_study(study_name="s", storage=study._storage).trials}
    assert states == {0: "COMPLETE", 1: "PRUNED"}

    mlflow_client = client(store)
    parent_id = study.user_attrs[PARENT_ATTR]["run_id"]
    parent = mlflow_client.get_run(parent_id)
    assert parent.info.run_name == "study s" and parent.info.status == "FINISHED"
    assert parent.data.metrics["best_value"] == study.best_value
    assert {a.path for a in mlflow_client.list_artifacts(parent_id)} >= {"report.json", "best_params.json"}
    experiment = parent.info.experiment_id
    children = mlflow_client.search_runs([experiment], f"tags.`mlflow.parentRunId` = '{parent_id}'")
    by_trial = {run.data.tags["optuna.trial"]: run for run in children}
    assert sorted(by_trial) == ["0", "1"]
    assert (by_trial["0"].info.status, by_trial["0"].data.tags["optuna.state"]) == ("FINISHED", "COMPLETE")
    assert (by_trial["1"].info.status, by_trial["1"].data.tags["optuna.state"]) == ("KILLED", "PRUNED")
    assert by_trial["1"].data.tags["stop_reason"].startswith("TrialPruned: epoch 2/3")
    assert by_trial["1"].data.params["lr"] == "0.0001"
    assert len(mlflow_client.search_runs([experiment])) == 3  # one parent, two trials: the re-run made no new parent
