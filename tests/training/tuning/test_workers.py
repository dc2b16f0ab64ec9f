"""Worker processes: a killed worker's study resumes, and two workers share one study on a journal file and on a
real PostgreSQL server."""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from cifar10_pipeline.training.config import TrainConfig
from cifar10_pipeline.training.tuning.study import open_storage
from harness.postgres import throwaway_postgres
from tests.support.paths import REPO
from tests.training.tuning.conftest import FINISHED, SMALL, TRIAL_LINE, cli, finished_trials, space_file


def _worker_args(tmp: Path, name: str, trials: int, *extra: str) -> list[str]:
    space = space_file(tmp, lr={"type": "float", "low": 0.03, "high": 0.3, "log": True})
    # 2 epochs (the later --epochs wins): enough to kill a worker between a trial's first and last epoch; one
    # worker process per command on any machine (several GPUs would make more) unless extra says otherwise
    return [*SMALL, "--epochs", "2", "--space", str(space), "--study-name", name, "--trials", str(trials),
            "--pruner", "none", "--studies-dir", str(tmp / "studies"), "--best", str(tmp / "best_params.json"),
            "--workers", "1", *extra]


def _assert_shared(study: optuna.Study, outputs: dict[int, str], target: int) -> None:
    """The target reached exactly, every finished trial reported by exactly one worker, the one whose process ran it
    (the trial's pid), and no other worker. ``outputs``: each worker's output by its pid. How the trials fall between
    the two workers is left to the race: a worker that starts late may find every trial taken, which is right."""
    done = finished_trials(study)
    assert len(done) == target
    reported = {pid: [int(n) for n, _ in TRIAL_LINE.findall(out)] for pid, out in outputs.items()}
    flat = [n for numbers in reported.values() for n in numbers]
    assert sorted(flat) == sorted(done), reported  # none lost, none run twice
    ran_by = {t.number: t.user_attrs["pid"] for t in study.get_trials(states=FINISHED)}
    assert {n: pid for pid, numbers in reported.items() for n in numbers} == ran_by
    for t in study.get_trials(states=(TrialState.FAIL,)):  # only a trial dropped in a race for the last slot
        assert t.params == {} and "config" not in t.user_attrs


def _lines(proc: subprocess.Popen, deadline: float):
    """The process's output lines until it ends or ``deadline`` (time.monotonic()) passes."""
    while (left := deadline - time.monotonic()) > 0 and select.select([proc.stdout], [], [], left)[0]:
        line = proc.stdout.readline()
        if not line:
            return
        yield line


@pytest.mark.slow
def test_killed_worker_resumes_and_keeps_every_finished_trial(tmp_path):
    args = _worker_args(tmp_path, "resume", 3, "--no-final-test")
    proc = subprocess.Popen(cli(*args), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen, finished_one = [], False
    for line in _lines(proc, deadline=time.monotonic() + 300):
        seen.append(line)
        finished_one |= bool(TRIAL_LINE.match(line))
        if finished_one and line.startswith('{"epoch": 1,'):
            break  # the next trial has trained its first epoch
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    storage = f"sqlite:///{tmp_path / 'studies' / 'resume.db'}"
    study = optuna.load_study(study_name="resume", storage=storage)
    kept = finished_trials(study)
    running = study.get_trials(states=(TrialState.RUNNING,))
    assert kept and len(running) == 1, "".join(seen[-30:])
    assert not (tmp_path / "best_params.json").exists()

    result = subprocess.run(cli(*args), cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    study = optuna.load_study(study_name="resume", storage=storage)
    after = finished_trials(study)
    assert len(after) == 3
    assert {n: after[n] for n in kept} == kept  # same numbers, states, values and params
    assert study.trials[running[0].number].state == TrialState.FAIL  # the killed worker's trial
    assert f"{len(kept)}/3 trials finished" in result.stdout
    assert TrainConfig.from_json(tmp_path / "best_params.json").epochs == 2


@pytest.mark.slow
def test_two_local_workers_share_one_journal_file_study(tmp_path):
    result = subprocess.run(cli(*_worker_args(tmp_path, "journal", 4, "--workers", "2", "--no-final-test")),
                            cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    journal = tmp_path / "studies" / "journal.journal"
    assert journal.is_file() and not (tmp_path / "studies" / "journal.db").exists()
    study = optuna.load_study(study_name="journal", storage=open_storage(str(journal)))
    # one stdout for both workers: split the lines by the worker id (host-pid) they print
    by_worker: dict[int, list[str]] = {}
    for line in result.stdout.splitlines():
        if TRIAL_LINE.match(line):
            by_worker.setdefault(int(re.search(r", \S+-(\d+)\]", line).group(1)), []).append(line)
    _assert_shared(study, {pid: "\n".join(lines) for pid, lines in by_worker.items()}, target=4)
    assert len(by_worker) <= 2
    assert TrainConfig.from_json(tmp_path / "best_params.json").epochs == 2


@pytest.fixture(scope="session")
def postgres_url():
    """A throwaway PostgreSQL server on 127.0.0.1 with one database; its URL, then it is gone."""
    with throwaway_postgres() as url:
        yield url


@pytest.mark.slow
def test_two_workers_share_one_postgresql_study(tmp_path, postgres_url):
    args = _worker_args(tmp_path, "pg", 4, "--storage", postgres_url, "--no-final-test")
    procs = [subprocess.Popen(cli(*args), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outputs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err[-2000:] for _, err in outputs]
    study = optuna.load_study(study_name="pg", storage=postgres_url)
    _assert_shared(study, {p.pid: out for p, (out, _) in zip(procs, outputs)}, target=4)
    assert all(f"in {postgres_url}" in out for out, _ in outputs)
    assert not (tmp_path / "studies" / "pg.db").exists()
