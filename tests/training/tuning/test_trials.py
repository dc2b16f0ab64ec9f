"""Trials: a dead worker's trials failed and run again, the objective's pruning steps and records, pruners,
surplus trials."""

from __future__ import annotations

import os
import subprocess
from types import SimpleNamespace

import optuna
import pytest
from optuna.trial import TrialState

from cifar10_pipeline.training.config import TrainConfig
from cifar10_pipeline.training.tuning import study as study_module
from cifar10_pipeline.training.tuning.config import TuneConfig
from cifar10_pipeline.training.tuning.space import HYPERPARAMETERS, SearchSpace
from cifar10_pipeline.training.tuning.study import MAX_RETRIES, make_pruner, open_storage
from cifar10_pipeline.training.tuning.workers import HOST, _Surplus, fail_dead_trials, make_objective
from tests.support.polling import wait_for
from tests.training.tuning.conftest import journal_study, space_file


def test_dead_local_workers_trials_are_failed_and_live_or_remote_ones_kept(tmp_path):
    study = journal_study(tmp_path)
    gone = _dead_pid()
    owners = [(HOST, gone), (HOST, os.getpid()), ("another-machine", gone)]
    trials = [study.ask() for _ in owners]
    for trial, (host, pid) in zip(trials, owners):
        trial.set_user_attr("host", host)
        trial.set_user_attr("pid", pid)
    assert fail_dead_trials(study) == [trials[0].number]
    states = [t.state for t in study.get_trials()]
    assert states == [TrialState.FAIL, TrialState.RUNNING, TrialState.RUNNING, TrialState.WAITING]  # + its retry
    assert fail_dead_trials(study) == []  # failed and retried once


def _dead_pid() -> int:
    gone = subprocess.Popen(["true"])
    gone.wait()
    return gone.pid


def test_a_dead_workers_trial_is_run_again_with_its_parameters_up_to_the_retry_limit(tmp_path):
    study = journal_study(tmp_path)
    lr = optuna.distributions.FloatDistribution(0.01, 1.0, log=True)
    first = study.ask({"lr": lr})
    for trial_number in range(MAX_RETRIES + 1):  # the first run, then each retry, dies
        trial = first if trial_number == 0 else study.ask()  # ask() takes the WAITING retry first
        assert trial.params == {"lr": first.params["lr"]}
        trial.set_user_attr("host", HOST)
        trial.set_user_attr("pid", _dead_pid())
        trial.set_user_attr("run_dir", f"runs/trial-{trial.number}")
        assert fail_dead_trials(study) == [trial.number]
    trials = study.get_trials()
    assert [t.state for t in trials] == [TrialState.FAIL] * (MAX_RETRIES + 1)  # no retry after the last death
    for retry in trials[1:]:
        assert retry.system_attrs["failed_trial"] == first.number
        assert retry.system_attrs["retry_history"] == list(range(retry.number))
    # a fresh trial is sampled once the retries are spent
    assert study.ask().number == MAX_RETRIES + 1


@pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used with Study.optimize")
def test_a_trial_whose_heartbeat_stopped_is_failed_and_run_again_on_a_database(tmp_path, monkeypatch):
    # a heartbeat every second, dead after 1 s without one: the same path as HEARTBEAT_S and GRACE_S, faster
    monkeypatch.setattr(study_module, "HEARTBEAT_S", 1)
    monkeypatch.setattr(study_module, "GRACE_S", 1)
    storage = open_storage(f"sqlite:///{tmp_path / 'heartbeat.db'}")
    study = optuna.create_study(study_name="heartbeat", storage=storage, direction="maximize")
    trial = study.ask({"lr": optuna.distributions.FloatDistribution(0.01, 1.0, log=True)})
    trial.set_user_attr("host", "another-machine")  # no pid this machine can check: only the heartbeat tells
    storage.record_heartbeat(trial._trial_id)

    def failed_by_its_heartbeat() -> bool:
        assert fail_dead_trials(study) == []  # none failed by pid ...
        return study.get_trials()[0].state == TrialState.FAIL

    wait_for(failed_by_its_heartbeat, "the silent trial to be failed once its heartbeat is older than GRACE_S")
    failed, retry = study.get_trials()
    assert failed.state == TrialState.FAIL  # ... but by the heartbeat, and queued again
    assert retry.state == TrialState.WAITING and retry.params == trial.params
    assert retry.system_attrs["failed_trial"] == trial.number and "host" not in retry.user_attrs


def _fake_train(accuracies):
    """A trainer stand-in: reports ``accuracies[epoch - 1]`` after each epoch it evaluates (every ``eval_every``-th
    and the last; the others' rows have no eval_acc) (``parent`` and ``tags``, the trial's MLflow placing, are the
    real train()'s business)."""
    def train(config, *, on_epoch, parent=None, tags=None):
        for epoch in range(1, config.epochs + 1):
            evaluated = epoch % config.eval_every == 0 or epoch == config.epochs
            on_epoch(epoch, {"train_acc": 0.5, **({"eval_acc": accuracies[epoch - 1]} if evaluated else {})})
        return SimpleNamespace(accuracy=accuracies[config.epochs - 1])
    return train


def test_objective_reports_steps_on_the_longest_schedule_and_records_the_config(tmp_path):
    space = SearchSpace.load(space_file(tmp_path, epochs={"type": "categorical", "choices": [2, 4]}))
    config = TuneConfig(base=TrainConfig.from_dict({"dataset": "synthetic", "val_fraction": 0.1}), space=space,
                             studies_dir=tmp_path, pruner="none")
    study = journal_study(tmp_path)
    objective = make_objective(config, _fake_train([0.2, 0.4, 0.6, 0.8]))
    # enqueued, so both schedules run whatever the sampler would draw
    for epochs in (2, 4, 2, 4):
        study.enqueue_trial({"epochs": epochs})
        study.optimize(objective, n_trials=1)
    seen = set()
    for t in study.get_trials():
        epochs = t.params["epochs"]
        seen.add(epochs)
        # a 2-epoch trial reports at steps 2 and 4 of the 4-epoch schedule, next to the 4-epoch trials' 2 and 4
        assert sorted(t.intermediate_values) == [e * 4 // epochs for e in range(1, epochs + 1)]
        assert t.value == [0.2, 0.4, 0.6, 0.8][epochs - 1]
        assert t.user_attrs["config"] == {k: getattr(TrainConfig.from_dict({"epochs": epochs}), k)
                                          for k in HYPERPARAMETERS}
        assert t.user_attrs["pid"] == os.getpid() and t.user_attrs["host"] == HOST
    assert seen == {2, 4}


def test_a_trial_that_evaluates_every_few_epochs_reports_only_those(tmp_path):
    space = SearchSpace.load(space_file(tmp_path, epochs={"type": "categorical", "choices": [3]}))
    base = TrainConfig.from_dict({"dataset": "synthetic", "val_fraction": 0.1, "eval_every": 2})
    config = TuneConfig(base=base, space=space, studies_dir=tmp_path, pruner="median")
    study = journal_study(tmp_path)
    study.optimize(make_objective(config, _fake_train([0.2, 0.4, 0.6])), n_trials=1)
    (trial,) = study.get_trials()
    assert trial.state == TrialState.COMPLETE and trial.intermediate_values == {2: 0.4, 3: 0.6}


@pytest.mark.parametrize("pruner", ["median", "hyperband"])
def test_pruners_stop_hopeless_trials_early(tmp_path, pruner):
    space = SearchSpace.load(space_file(tmp_path, lr={"type": "categorical", "choices": [0.0001, 0.1]}))
    config = TuneConfig(base=TrainConfig.from_dict({"dataset": "synthetic", "val_fraction": 0.1, "epochs": 8}),
                             space=space, studies_dir=tmp_path, pruner=pruner, pruner_startup_trials=1,
                             pruner_warmup=1, sampler_seed=0)
    study = optuna.create_study(storage=open_storage(str(tmp_path / "s.journal")), direction="maximize",
                                pruner=make_pruner(config), sampler=optuna.samplers.RandomSampler(seed=0))
    good, hopeless = _fake_train([0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.92, 0.93]), _fake_train([0.1] * 8)
    objective = make_objective(
        config, lambda c, on_epoch, **placing: (good if c.lr == 0.1 else hopeless)(c, on_epoch=on_epoch))
    study.optimize(objective, n_trials=12)
    pruned = study.get_trials(states=(TrialState.PRUNED,))
    assert pruned and all(t.params["lr"] == 0.0001 and len(t.intermediate_values) < 8 for t in pruned)
    assert all(t.state == TrialState.COMPLETE for t in study.get_trials() if t.params["lr"] == 0.1)


def test_a_trial_beyond_the_target_is_dropped_not_run(tmp_path):
    config = TuneConfig(base=TrainConfig.from_dict({"dataset": "synthetic", "val_fraction": 0.1}),
                             space=SearchSpace.load(), studies_dir=tmp_path, trials=1)
    study = journal_study(tmp_path)
    study.ask()  # another worker's running trial takes the only slot
    objective = make_objective(config, _fake_train([0.5] * 16))
    study.optimize(objective, n_trials=1, catch=(_Surplus,))
    last = study.get_trials()[-1]
    assert last.state == TrialState.FAIL and last.params == {} and "config" not in last.user_attrs
