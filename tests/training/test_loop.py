"""The framework-neutral training loop (``training.loop``), driven through a recording numpy adapter: what it
asks of a framework, in which order and with which numbers, and how it resumes."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from cifar10_pipeline.tracking import store
from cifar10_pipeline.tracking.runs import FAILED, FINISHED, KILLED, PARENT_TAG, RunRef
from cifar10_pipeline.tracking.settings import tracking_uri
from cifar10_pipeline.training import distributed, loop, source
from cifar10_pipeline.training.config import TrainConfig, one_cycle_lr
from cifar10_pipeline.training.datasets import TrainingData
from cifar10_pipeline.training.run import Run, RunError
from tests.support.runs import tiny_config

N_TRAIN, N_TEST = 300, 40


class Interrupt(Exception):
    pass


class Recorder:
    """A ``loop.Trainer`` that learns nothing and records every call. Its "weights" are the number of steps
    taken, so a checkpoint that loses or repeats a step shows up in the final state."""

    framework = "numpy"
    model_file = "model.json"
    checkpoint_file = "checkpoint.json"
    is_main = True
    instances: list[Recorder] = []

    def __init__(self, config: TrainConfig, data: TrainingData):
        assert isinstance(config, TrainConfig)  # the adapter is built from the run's config
        self.data, self.steps, self.calls, self.shared = data, 0, [], []
        Recorder.instances.append(self)

    def share(self, value):
        self.shared.append(value)
        return value

    def close(self) -> None:
        self.calls.append(("close",))

    def describe(self) -> dict:
        return {"framework_version": "0", "device": "cpu", "precision": "float32", "num_parameters": 1}

    def begin_epoch(self, seed: int) -> None:
        self.calls.append(("begin_epoch", seed))

    def step(self, idx: np.ndarray, lr: float):
        self.steps += 1
        self.calls.append(("step", idx.copy(), lr))
        labels = self.data.train_labels[idx]
        return np.float32(0.5), np.int64((labels == 0).sum())  # "predicts" class 0 for every image

    def predict(self, images: np.ndarray) -> np.ndarray:
        self.calls.append(("predict", len(images)))
        logits = np.zeros((len(images), self.data.num_classes), np.float32)
        logits[:, 0] = self.steps  # class 0, as confident as the run is long
        return logits

    def save_checkpoint(self, path: Path, epoch: int) -> None:
        self.calls.append(("save_checkpoint", epoch))
        path.write_text(json.dumps({"epoch": epoch, "steps": self.steps}))

    def load_checkpoint(self, path: Path) -> int:
        saved = json.loads(path.read_text())
        self.steps = saved["steps"]
        self.calls.append(("load_checkpoint", saved["epoch"]))
        return saved["epoch"]

    def save_model(self, path: Path) -> None:
        self.calls.append(("save_model",))
        path.write_text(json.dumps({"steps": self.steps}))


@pytest.fixture(autouse=True)
def fresh_recorders():
    Recorder.instances.clear()


def small(tmp_path, **overrides) -> TrainConfig:
    return tiny_config(tmp_path, **{"epochs": 3, "batch_size": 128, "max_train_samples": N_TRAIN,
                                    "max_test_samples": N_TEST, **overrides})


def stopped_after_one_epoch(config: TrainConfig) -> None:
    """Train ``config`` until its first checkpoint, then stop it as a killed process stops."""

    def stop(epoch, row):
        raise Interrupt

    with pytest.raises(Interrupt):
        loop.fit(Recorder, config, on_epoch=stop)


def names(calls) -> list[str]:
    return [c[0] for c in calls]


def test_each_epoch_seeds_orders_and_schedules_as_documented(tmp_path):
    config = small(tmp_path, seed=7)
    loop.fit(Recorder, config)
    calls = Recorder.instances[0].calls
    steps_per_epoch = 3  # ceil(300 / 128)
    total = 3 * steps_per_epoch
    epoch_calls = ["begin_epoch"] + ["step"] * steps_per_epoch + ["predict", "save_checkpoint"]
    assert names(calls) == epoch_calls * 3 + ["save_model", "close"]
    assert [c[1] for c in calls if c[0] == "begin_epoch"] == [7 * loop.SEED_STRIDE + e for e in range(3)]
    steps = [c for c in calls if c[0] == "step"]
    for epoch in range(3):
        order = np.concatenate([s[1] for s in steps[epoch * steps_per_epoch:(epoch + 1) * steps_per_epoch]])
        np.testing.assert_array_equal(order, np.random.default_rng([7, epoch]).permutation(N_TRAIN))
    assert [len(s[1]) for s in steps[:3]] == [128, 128, 44]
    assert [s[2] for s in steps] == pytest.approx([one_cycle_lr(config, (i + 1) / total) for i in range(total)])
    assert [c[1] for c in calls if c[0] == "save_checkpoint"] == [1, 2, 3]
    assert [c[1] for c in calls if c[0] == "predict"] == [N_TEST] * 3  # the eval split, once per epoch


def test_the_run_records_what_the_adapter_reports(tmp_path):
    result = loop.fit(Recorder, small(tmp_path))
    rows, info = result.metrics, result.run.info
    share_of_class_0 = float((Recorder.instances[0].data.train_labels == 0).mean())
    assert [r["train_loss"] for r in rows] == pytest.approx([0.5] * 3)
    assert [r["train_acc"] for r in rows] == pytest.approx([share_of_class_0] * 3)
    assert info["framework"] == "numpy" and info["num_parameters"] == 1 and info["status"] == "finished"
    # what the export reads to label the model's outputs
    data = Recorder.instances[0].data
    assert info["dataset"] == data.name == "synthetic" and info["classes"] == list(data.classes)
    assert len(info["classes"]) == 10
    assert result.split == "test" and info["test_accuracy"] == result.accuracy
    assert "val_accuracy" not in info and "eval_accuracy" not in info
    assert json.loads((result.run.path / "model.json").read_text()) == {"steps": 9}


def test_each_epoch_row_names_its_epoch_and_its_last_step_s_rate_and_reaches_on_epoch(tmp_path):
    config = small(tmp_path)
    seen = []
    result = loop.fit(Recorder, config, on_epoch=lambda epoch, row: seen.append((epoch, row)))
    rows = result.metrics
    assert [r["epoch"] for r in rows] == [1, 2, 3]  # counted from 1, as the progress bar and a resume count
    # the rate the epoch ended on: its last step's, 3 steps per epoch (ceil(300 / 128)) of 9
    assert [r["lr"] for r in rows] == pytest.approx([one_cycle_lr(config, 3 * e / 9) for e in (1, 2, 3)])
    assert [epoch for epoch, _ in seen] == [1, 2, 3]
    assert [row for _, row in seen] == rows  # the callback (the tuner's pruning) gets the row that was logged


def test_a_validation_split_evaluates_and_names_the_accuracy(tmp_path):
    result = loop.fit(Recorder, small(tmp_path, val_fraction=0.2))
    assert {r["eval_split"] for r in result.metrics} == {"val"} and result.split == "val"
    info = result.run.info
    assert info["val_accuracy"] == result.accuracy and "test_accuracy" not in info


def test_resume_continues_after_the_checkpoint_and_ends_like_an_uninterrupted_run(tmp_path):
    full = loop.fit(Recorder, small(tmp_path, run_name="full"))
    config = small(tmp_path, run_name="cut")
    stopped_after_one_epoch(config)
    # a row logged after the checkpoint (killed between the two writes) is rewritten by the resumed run
    with open(tmp_path / "runs" / "cut" / "metrics.jsonl", "a") as f:
        f.write(json.dumps({"epoch": 2, "stray": True}) + "\n")
    resumed = loop.fit(Recorder, config, resume=Run.open(tmp_path / "runs" / "cut"))
    calls = Recorder.instances[-1].calls
    assert calls[0] == ("load_checkpoint", 1)
    assert [c[1] for c in calls if c[0] == "begin_epoch"] == [config.seed * loop.SEED_STRIDE + e for e in (1, 2)]
    drop = ("seconds", "train_seconds", "images_per_second")
    assert [{k: v for k, v in r.items() if k not in drop} for r in resumed.metrics] == \
           [{k: v for k, v in r.items() if k not in drop} for r in full.metrics]
    assert json.loads((resumed.run.path / "model.json").read_text()) == {"steps": 9}


def test_a_restarted_torchrun_group_continues_its_run_from_the_checkpoint(tmp_path, monkeypatch):
    # torchrun restarts every process of a group that lost one, with no --resume: the loop finds the run itself
    config = small(tmp_path)
    stopped_after_one_epoch(config)
    monkeypatch.setenv(distributed.RESTART_COUNT, "1")
    again = loop.fit(Recorder, config)
    assert Recorder.instances[1].calls[0] == ("load_checkpoint", 1)
    assert again.run.path == Path(config.runs_dir) / "tiny" and [p.name for p in again.run.path.parent.iterdir()
                                                                 if p.is_dir()] == ["tiny"]
    assert json.loads((again.run.path / "model.json").read_text()) == {"steps": 9}  # as if never interrupted
    assert [r["epoch"] for r in again.metrics] == [1, 2, 3]


# on several nodes rank 0 may come back with a restart count of 0: a node's torchrun does not count the restart it
# makes to let a restarted node join
@pytest.mark.parametrize("variables", [{distributed.RESTART_COUNT: "1"}, {"GROUP_WORLD_SIZE": "2"}],
                         ids=["restarted", "several-nodes"])
def test_a_restarted_group_finds_its_named_run_when_another_run_started_since(tmp_path, monkeypatch, variables):
    # two Jobs on one volume: LAST.json points at the other one's run by the time this group is restarted
    config = small(tmp_path)
    stopped_after_one_epoch(config)
    stopped_after_one_epoch(small(tmp_path, run_name="other"))
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    again = loop.fit(Recorder, config)
    assert Recorder.instances[-1].calls[0] == ("load_checkpoint", 1)
    assert again.run.path == Path(config.runs_dir) / "tiny" and [r["epoch"] for r in again.metrics] == [1, 2, 3]


def test_on_one_node_a_start_that_counts_no_restart_does_not_take_up_a_run_of_its_name(tmp_path, monkeypatch):
    config = small(tmp_path)
    stopped_after_one_epoch(config)
    monkeypatch.setenv("GROUP_WORLD_SIZE", "1")
    with pytest.raises(RunError, match="already exists"):
        loop.fit(Recorder, config)


def test_a_group_restarted_before_its_first_checkpoint_trains_its_run_from_the_start(tmp_path, monkeypatch):
    config = small(tmp_path)

    class FailsAtOnce(Recorder):
        def step(self, idx, lr):
            raise RuntimeError("rank 1 was killed")

    with pytest.raises(RuntimeError):
        loop.fit(FailsAtOnce, config)
    assert not (Path(config.runs_dir) / "tiny" / Recorder.checkpoint_file).exists()
    monkeypatch.setenv(distributed.RESTART_COUNT, "1")
    again = loop.fit(Recorder, config)
    assert "load_checkpoint" not in names(Recorder.instances[1].calls)
    assert again.run.path == Path(config.runs_dir) / "tiny" and again.run.info["status"] == "finished"
    assert json.loads((again.run.path / "model.json").read_text()) == {"steps": 9}


def test_resuming_a_finished_run_evaluates_once_and_saves_the_model_again(tmp_path):
    config = small(tmp_path)
    first = loop.fit(Recorder, config)
    again = loop.fit(Recorder, config, resume=first.run)
    assert names(Recorder.instances[-1].calls) == ["load_checkpoint", "predict", "save_model", "close"]
    assert again.accuracy == first.accuracy and len(again.metrics) == 3


def test_resuming_an_older_run_replaces_its_former_accuracy_keys(tmp_path):
    config = small(tmp_path)
    first = loop.fit(Recorder, config)
    info = first.run.info
    accuracy = info.pop("test_accuracy")
    (first.run.path / "run.json").write_text(json.dumps({**info, "eval_accuracy": accuracy, "eval_split": "test"}))
    again = loop.fit(Recorder, config, resume=Run.open(first.run.path))
    info = again.run.info
    assert info["test_accuracy"] == accuracy == again.accuracy and info["status"] == "finished"
    assert "eval_accuracy" not in info and "eval_split" not in info


def test_the_run_names_the_code_that_started_it_and_a_resume_by_the_same_code_adds_nothing(tmp_path, capsys):
    config = small(tmp_path)
    stopped_after_one_epoch(config)
    started = Run.open(tmp_path / "runs" / "tiny").info["source"]
    assert started == source.describe()
    resumed = loop.fit(Recorder, config, resume=Run.open(tmp_path / "runs" / "tiny"))
    assert resumed.run.info["source"] == started and "resumed_source" not in resumed.run.info
    assert "warning" not in capsys.readouterr().err


def test_resuming_with_other_code_warns_and_records_the_resuming_code(tmp_path, monkeypatch, capsys):
    config = small(tmp_path)
    stopped_after_one_epoch(config)
    started = Run.open(tmp_path / "runs" / "tiny").info["source"]
    other = {**started, "files_sha256": "0" * 64}
    monkeypatch.setattr(source, "describe", lambda: other)
    resumed = loop.fit(Recorder, config, resume=Run.open(tmp_path / "runs" / "tiny"))
    assert resumed.run.info["source"] == started and resumed.run.info["resumed_source"] == other
    err = capsys.readouterr().err
    assert f"it was started by other code ({source.label(started)}) than resumes it ({source.label(other)})" in err


def test_resuming_a_run_that_names_no_code_warns_that_it_cannot_tell(tmp_path, capsys):
    config = small(tmp_path)
    stopped_after_one_epoch(config)
    path = tmp_path / "runs" / "tiny" / "run.json"
    info = json.loads(path.read_text())
    del info["source"]  # a run started before runs named their code
    path.write_text(json.dumps(info))
    resumed = loop.fit(Recorder, config, resume=Run.open(path.parent))
    assert "source" not in resumed.run.info and resumed.run.info["resumed_source"] == source.describe()
    assert "its run.json does not say which code started it" in capsys.readouterr().err


def test_resuming_a_run_without_a_checkpoint_says_to_start_afresh(tmp_path):
    config = small(tmp_path)
    run = Run.create(config, "numpy")
    with pytest.raises(RunError, match="stopped before its first epoch ended; start it afresh$"):
        loop.fit(Recorder, config, resume=run)


def test_a_process_other_than_the_main_one_trains_the_same_steps_and_writes_nothing(tmp_path, monkeypatch):
    """Under torchrun every process runs the loop; the others take the main one's run through ``share`` and only
    step: no evaluation, checkpoint, model, run directory or progress bar of their own."""
    monkeypatch.setattr(loop, "tqdm", Bar)
    Bar.made.clear()
    main = loop.fit(Recorder, small(tmp_path))
    values = list(Recorder.instances[0].shared)

    class Follower(Recorder):
        is_main = False

        def share(self, value):
            assert value is None or isinstance(value, tuple) and set(value) == {None}  # it has nothing to give
            return values.pop(0)

    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    follower = loop.fit(Follower, small(tmp_path, run_name="other"))
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before  # "other" was never made
    assert follower.run.path == main.run.path and follower.accuracy == main.accuracy and values == []
    main_calls, follower_calls = Recorder.instances[0].calls, Recorder.instances[1].calls
    steps = [c for c in main_calls if c[0] in ("begin_epoch", "step")]
    assert [c[0] for c in follower_calls if c[0] not in ("begin_epoch", "step")] == ["close"]
    assert len(follower_calls) == len(steps) + 1
    for mine, theirs in zip(follower_calls, steps):
        assert mine[0] == theirs[0] and all(np.array_equal(a, b) for a, b in zip(mine[1:], theirs[1:]))
    epochs = small(tmp_path).epochs
    assert [bar["disable"] for bar in Bar.made] == [None] * epochs + [True] * epochs  # one bar per group: rank 0's


class Bar:
    """Stands in for tqdm in ``training.loop``: records how each epoch's bar is made and what it shows."""

    made: list[dict] = []

    def __init__(self, steps, **kwargs):
        self.steps, self.postfixes = steps, []
        Bar.made.append({"steps": list(steps), **kwargs, "postfixes": self.postfixes})

    def __iter__(self):
        return iter(self.steps)

    def set_postfix(self, **values):
        self.postfixes.append(values)


def tracked(tmp_path, monkeypatch, **overrides) -> tuple[TrainConfig, object]:
    """A small config that tracks into its runs_dir's embedded store, and an MLflow client on that store."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    config = small(tmp_path, tracking=True, **overrides)
    return config, store.client(tracking_uri(config.runs_dir))


def test_a_tracked_run_logs_each_epoch_at_its_step_under_its_parent_with_its_tags(tmp_path, monkeypatch):
    config, client = tracked(tmp_path, monkeypatch)
    experiment = store.experiment(client, "parent-experiment")
    parent = RunRef(tracking_uri(config.runs_dir), experiment, client.create_run(experiment).info.run_id)
    result = loop.fit(Recorder, config, parent=parent, tags={"trial": 4})
    run = client.get_run(result.run.info["mlflow"]["run_id"])
    assert run.info.status == FINISHED and run.info.experiment_id == experiment
    assert run.data.tags[PARENT_TAG] == parent.run_id and run.data.tags["trial"] == "4"
    assert run.data.tags["framework"] == "numpy" and run.data.tags["dataset"] == "synthetic"  # from the adapter
    assert run.data.params["num_parameters"] == "1" and run.data.params["epochs"] == "3"
    history = client.get_metric_history(run.info.run_id, "eval_acc")
    assert [(m.step, m.value) for m in history] == [(r["epoch"], r["eval_acc"]) for r in result.metrics]


@pytest.mark.parametrize("how, status", [("stop", KILLED), ("failure", FAILED)])
def test_a_tracked_run_stopped_on_purpose_ends_killed_and_a_failed_one_failed(tmp_path, monkeypatch, how, status):
    config, client = tracked(tmp_path, monkeypatch)

    def stop_after_first(epoch, row):  # as the tuner prunes a trial
        raise Interrupt(f"pruned at epoch {epoch}")

    class Failing(Recorder):
        def predict(self, images):
            raise RuntimeError("the device is gone")

    with pytest.raises(Interrupt if how == "stop" else RuntimeError):
        loop.fit(Recorder if how == "stop" else Failing, config, on_epoch=stop_after_first if how == "stop" else None)
    info = json.loads((Path(config.runs_dir) / "tiny" / "run.json").read_text())
    run = client.get_run(info["mlflow"]["run_id"])
    assert run.info.status == status
    reason = "Interrupt: pruned at epoch 1" if how == "stop" else "RuntimeError: the device is gone"
    assert run.data.tags["stop_reason"] == reason


def test_only_the_main_process_tracks(tmp_path, monkeypatch):
    config, client = tracked(tmp_path, monkeypatch)
    main = loop.fit(Recorder, config)
    values = list(Recorder.instances[0].shared)

    class Follower(Recorder):
        is_main = False

        def share(self, value):
            return values.pop(0)

    ref = dict(main.run.info["mlflow"])
    loop.fit(Follower, config)
    runs = client.search_runs([ref["experiment_id"]])
    assert [r.info.run_id for r in runs] == [ref["run_id"]]
    assert json.loads((main.run.path / "run.json").read_text())["mlflow"] == ref
    # the follower neither reopened the main process's MLflow run (which run.json names) nor logged into it
    assert len(client.get_metric_history(ref["run_id"], "test_accuracy")) == 1


def test_an_epoch_killed_between_its_checkpoint_and_mlflow_is_logged_when_the_run_resumes(tmp_path, monkeypatch):
    config, client = tracked(tmp_path, monkeypatch)

    class KilledAfterCheckpoint(Recorder):
        def save_checkpoint(self, path, epoch):
            super().save_checkpoint(path, epoch)
            if epoch == 2:
                raise Interrupt  # the checkpoint of epoch 2 is on disk; its metrics never reached MLflow

    with pytest.raises(Interrupt):
        loop.fit(KilledAfterCheckpoint, config)
    cut = Run.open(Path(config.runs_dir) / "tiny")
    run_id = cut.info["mlflow"]["run_id"]
    assert [m.step for m in client.get_metric_history(run_id, "train_loss")] == [1]
    resumed = loop.fit(Recorder, config, resume=cut)
    assert resumed.run.info["mlflow"]["run_id"] == run_id
    for key in ("train_loss", "lr"):
        history = sorted(client.get_metric_history(run_id, key), key=lambda m: m.step)
        assert [(m.step, m.value) for m in history] == [(r["epoch"], r[key]) for r in resumed.metrics]  # each once


def test_a_run_resumed_with_tracking_on_logs_the_epochs_it_trained_untracked(tmp_path, monkeypatch):
    config, client = tracked(tmp_path, monkeypatch)
    stopped_after_one_epoch(small(tmp_path, tracking=False))
    resumed = loop.fit(Recorder, config, resume=Run.open(Path(config.runs_dir) / "tiny"))
    history = client.get_metric_history(resumed.run.info["mlflow"]["run_id"], "train_acc")
    assert sorted((m.step, m.value) for m in history) == [(r["epoch"], r["train_acc"]) for r in resumed.metrics]


def test_a_finished_run_resumed_with_tracking_logs_its_final_accuracy_once(tmp_path, monkeypatch):
    config, client = tracked(tmp_path, monkeypatch)
    first = loop.fit(Recorder, config)
    again = loop.fit(Recorder, config, resume=first.run)
    run_id = again.run.info["mlflow"]["run_id"]
    assert run_id == first.run.info["mlflow"]["run_id"] and client.get_run(run_id).info.status == FINISHED
    assert [(m.step, m.value) for m in client.get_metric_history(run_id, "test_accuracy")] == [(0, again.accuracy)]


def test_each_epoch_shows_a_bar_with_the_loss_and_rate_every_few_steps(tmp_path, monkeypatch):
    monkeypatch.setattr(loop, "tqdm", Bar)
    Bar.made.clear()
    config = small(tmp_path, batch_size=10, epochs=2)  # 30 steps an epoch: the bar is updated at steps 0, 10, 20
    loop.fit(Recorder, config)
    lrs = [c[2] for c in Recorder.instances[0].calls if c[0] == "step"]
    assert [{k: v for k, v in bar.items() if k != "postfixes"} for bar in Bar.made] == [
        {"steps": list(range(30)), "desc": f"epoch {e}/2", "leave": False, "disable": None} for e in (1, 2)]
    for epoch, bar in enumerate(Bar.made):
        assert bar["postfixes"] == [{"loss": "0.500", "lr": f"{lrs[epoch * 30 + i]:.3g}"} for i in (0, 10, 20)]


def test_a_resumed_run_says_where_it_goes_on(tmp_path, capsys):
    config = small(tmp_path, run_name="cut")

    def stop_after_first(epoch, row):
        if epoch == 1:
            raise Interrupt

    with pytest.raises(Interrupt):
        loop.fit(Recorder, config, on_epoch=stop_after_first)
    capsys.readouterr()
    loop.fit(Recorder, config, resume=Run.open(tmp_path / "runs" / "cut"))
    assert f"resuming {tmp_path / 'runs' / 'cut'} after epoch 1/3\n" in capsys.readouterr().err


def test_each_epoch_row_times_its_training_within_the_whole_epoch(tmp_path):
    start = time.perf_counter()
    rows = loop.fit(Recorder, small(tmp_path)).metrics
    elapsed = time.perf_counter() - start
    assert all(0 <= r["train_seconds"] <= r["seconds"] <= elapsed for r in rows)


def test_eval_every_evaluates_every_nth_epoch_and_the_last_and_rows_say_which(tmp_path):
    seen = []
    result = loop.fit(Recorder, small(tmp_path, epochs=5, eval_every=2), on_epoch=lambda e, row: seen.append(row))
    calls = Recorder.instances[0].calls
    evaluated_after = [sum(c[0] == "save_checkpoint" for c in calls[:i]) + 1
                       for i, c in enumerate(calls) if c[0] == "predict"]
    assert evaluated_after == [2, 4, 5]  # the last epoch too, whose evaluation is the run's
    assert [c[1] for c in calls if c[0] == "save_checkpoint"] == [1, 2, 3, 4, 5]  # checkpoints stay per epoch
    rows = result.metrics
    assert [("eval_acc" in r, "eval_loss" in r, "eval_split" in r) for r in rows] == [
        (e in (2, 4, 5),) * 3 for e in range(1, 6)]
    assert seen == rows and result.accuracy == rows[-1]["eval_acc"]
    assert (result.run.path / "curves.png").stat().st_size > 0
