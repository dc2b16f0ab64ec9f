"""A training run in MLflow, read back through the client: the config as parameters, each epoch's metrics at its
step, the run directory's files, and the run's end; the same from both trainers (the one loop logs)."""

from __future__ import annotations

import json

from cifar10_pipeline.tracking.settings import experiment_name
from cifar10_pipeline.training import source


def test_the_run_json_names_its_mlflow_run_in_the_data_sets_experiment(tracked):
    ref = tracked.result.run.info["mlflow"]
    assert ref["tracking_uri"] == f"sqlite:///{(tracked.runs_dir / 'mlflow.db').resolve()}"
    run = tracked.client.get_run(ref["run_id"])
    assert tracked.client.get_experiment(run.info.experiment_id).name == experiment_name("synthetic")
    assert run.info.run_name == tracked.result.run.path.name
    assert run.info.status == "FINISHED"
    assert run.data.tags["framework"] == tracked.result.run.info["framework"]


def test_the_code_that_trained_the_run_is_tagged_as_run_json_names_it(tracked):
    code = tracked.result.run.info["source"]
    tags = tracked.client.get_run(tracked.run_id).data.tags
    assert tags["source_files_sha256"] == code["files_sha256"] == source.describe()["files_sha256"]
    # the suite runs from a git checkout (an editable install): the commit goes where MLflow's UI shows it
    assert tags[source.GIT_COMMIT_TAG] == code["git_commit"]
    assert tags["source_git_dirty"] == str(code["git_dirty"])


def test_the_config_is_logged_as_parameters(tracked):
    params = tracked.client.get_run(tracked.run_id).data.params
    config = tracked.result.run.config.to_dict()
    assert {k: params[k] for k in config} == {k: "" if v is None else str(v) for k, v in config.items()}
    assert params["num_parameters"] == str(tracked.result.run.info["num_parameters"])


def test_every_epochs_metrics_are_logged_at_its_step(tracked):
    rows = tracked.result.metrics
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    for key in ("train_loss", "train_acc", "eval_loss", "eval_acc", "lr", "images_per_second"):
        history = tracked.client.get_metric_history(tracked.run_id, key)
        assert [(m.step, m.value) for m in sorted(history, key=lambda m: m.step)] == \
            [(r["epoch"], r[key]) for r in rows], key
    final = tracked.client.get_run(tracked.run_id).data.metrics
    assert final["test_accuracy"] == tracked.result.accuracy


def test_the_run_directorys_files_are_its_artifacts(tracked, tmp_path):
    run_dir = tracked.result.run.path
    logged = {a.path.removeprefix("run/") for a in tracked.client.list_artifacts(tracked.run_id, "run")}
    assert logged == {p.name for p in run_dir.iterdir() if p.is_file()}
    assert {"curves.png", "confusion.png", "metrics.jsonl", "config.json", "run.json"} <= logged
    local = tracked.client.download_artifacts(tracked.run_id, "run/run.json", str(tmp_path))
    assert json.loads(open(local).read())["status"] == "finished"
    # artifacts live beside the embedded store, not in ./mlruns of the working directory
    assert (tracked.runs_dir / "mlartifacts").is_dir()
