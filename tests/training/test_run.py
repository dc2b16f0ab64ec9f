"""A run's directory (``training.run.Run``) as the loop and ``--resume`` use it: created once with its config, info,
empty metrics and the LAST.json pointer, opened again by path or as the last run, refused with a message saying what
to do, and its metrics cut back to a checkpoint's epoch."""

from __future__ import annotations

import calendar
import json
import re
import time
from pathlib import Path

import pytest

from cifar10_pipeline.training.run import Run, RunError
from tests.support.runs import tiny_config
from tests.support.streams import Piped


def test_a_new_run_holds_its_config_info_empty_metrics_and_is_the_last_one(tmp_path):
    config = tiny_config(tmp_path, run_name="first")
    run = Run.create(config, "numpy")
    assert run.path == tmp_path / "runs" / "first" and run.config == config
    assert set(run.info) == {"framework", "status", "created"}
    assert run.info["framework"] == "numpy" and run.info["status"] == "running"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", run.info["created"])
    assert (run.path / "metrics.jsonl").read_text() == "" and run.metrics() == []
    assert json.loads((tmp_path / "runs" / "LAST.json").read_text()) == {"run": str(run.path)}
    assert Run.open(None, tmp_path / "runs").path == run.path


def test_a_run_s_creation_time_is_utc_whatever_the_machine_s_time_zone(tmp_path, monkeypatch):
    monkeypatch.setenv("TZ", "IST-5:30")  # POSIX: UTC+05:30, no daylight saving, no tz database needed
    time.tzset()
    try:
        before = time.time()
        run = Run.create(tiny_config(tmp_path), "numpy")
        created = calendar.timegm(time.strptime(run.info["created"], "%Y-%m-%dT%H:%M:%SZ"))
        assert before - 1 <= created <= time.time() + 1
    finally:
        monkeypatch.undo()
        time.tzset()


def test_an_unnamed_run_is_named_after_its_framework_data_set_and_start(tmp_path):
    run = Run.create(tiny_config(tmp_path, run_name=""), "numpy")
    assert re.fullmatch(r"numpy-synthetic-\d{8}-\d{6}", run.path.name), run.path.name


def test_a_run_is_never_created_over_another_but_an_empty_folder_is_used(tmp_path):
    config = tiny_config(tmp_path, run_name="taken")
    (tmp_path / "runs" / "taken").mkdir(parents=True)  # made by hand, no run in it yet
    Run.create(config, "numpy")
    with pytest.raises(RunError, match=r"run directory .*taken already exists: pick another --run-name or use "
                                        r"--resume .*taken"):
        Run.create(config, "numpy")


def test_opening_what_is_not_a_run_says_what_to_do(tmp_path):
    with pytest.raises(RunError, match=r"no run recorded in .*LAST\.json: train first \(make train-torch or make "
                                       r"train-tf\) or pass a run directory"):
        Run.open(None, tmp_path)
    with pytest.raises(RunError, match=r"is not a run directory \(no config\.json\)"):
        Run.open(tmp_path)


def test_metrics_are_logged_one_line_each_and_cut_back_to_a_checkpoint(tmp_path, capsys):
    run = Run.create(tiny_config(tmp_path), "numpy")
    rows = [{"epoch": e, "eval_acc": e / 10} for e in (1, 2, 3)]
    for r in rows:
        run.log_epoch(r)
    assert capsys.readouterr().out == "".join(json.dumps(r) + "\n" for r in rows)  # each row shown as it is logged
    assert (run.path / "metrics.jsonl").read_text() == "".join(json.dumps(r) + "\n" for r in rows)
    (run.path / "metrics.jsonl").write_text((run.path / "metrics.jsonl").read_text() + "\n  \n")
    assert run.metrics() == rows  # blank lines are no rows
    run.truncate_metrics(2)
    assert run.metrics() == rows[:2]
    assert (run.path / "metrics.jsonl").read_text() == "".join(json.dumps(r) + "\n" for r in rows[:2])


def test_each_metrics_line_reaches_a_piped_log_as_it_is_logged(tmp_path, monkeypatch):
    # a Job's log (kubectl logs -f) or a tee shows each epoch when it ends, not when the buffer fills
    run = Run.create(tiny_config(tmp_path), "numpy")
    piped = Piped()
    monkeypatch.setattr("sys.stdout", piped)
    for epoch in (1, 2):
        run.log_epoch({"epoch": epoch})
    text = "".join(piped.events)
    assert text.replace("<flush>", "") == '{"epoch": 1}\n{"epoch": 2}\n'
    assert text.endswith("<flush>") and text.count("<flush>") == 2
    assert text.index("<flush>") < text.index('{"epoch": 2}')  # the first row was out before the second came


def test_the_last_run_is_looked_for_under_runs_by_default(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = Run.create(tiny_config(tmp_path, runs_dir="runs"), "numpy")
    assert Run.open().path == run.path == Path("runs") / "tiny"
