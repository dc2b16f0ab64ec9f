"""The Optuna tuner: search space checks, pruning, best params the trainers accept, resume after a kill, workers
sharing one study on a journal file and on a real PostgreSQL server, bad input failing cleanly, the benchmark."""

from __future__ import annotations

import contextlib
import glob
import io
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import optuna
import pytest
from optuna.trial import TrialState

from training import tune
from training.config import TrainConfig

REPO = Path(__file__).resolve().parent.parent
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# 2000 synthetic images, width 8, 3 epochs: about 5 s a trial on 2 idle cores, and a good lr learns to ~80%
# float32: these tests are about the tuner, and this tiny width-8 net's 3-epoch accuracy swings with the arithmetic
# as much as with the seed (seeds 0-3: 34-96% in float32, 24-87% in bfloat16, the auto precision on CPUs with
# native bfloat16); float32 keeps the assertions on the same numbers on every CPU
SMALL = ["--dataset", "synthetic", "--epochs", "3", "--width", "8", "--batch-size", "64",
         "--max-train-samples", "2000", "--max-test-samples", "500", "--precision", "float32"]
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
TRIAL_LINE = re.compile(r"^trial (\d+) (COMPLETE|PRUNED)", re.M)


def space_file(directory: Path, **params) -> Path:
    """A search-space override that drops every default parameter except ``params``."""
    defaults = json.loads(tune.DEFAULT_SPACE.read_text())
    path = directory / "space.json"
    path.write_text(json.dumps({**{name: None for name in defaults}, **params}))
    return path


def run_main(argv: list[str]) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = tune.main(argv)
    return code, out.getvalue()


def cli(*args: str, python: str = sys.executable) -> list[str]:
    return [python, "-m", "training.tune", *args]


def finished_trials(study: optuna.Study) -> dict[int, tuple]:
    return {t.number: (t.state, t.value, t.params) for t in study.get_trials(states=FINISHED)}


# ---------------------------------------------------------------------------------------------------- search space


def test_default_space_covers_the_issue_and_every_bound_is_a_valid_config():
    space = tune.SearchSpace.load()
    names = {p.name for p in space.params}
    assert names == {"lr", "weight_decay", "batch_size", "momentum", "dropout", "label_smoothing", "width",
                     "crop_padding", "rotation", "flip", "epochs"}
    by_name = {p.name: p for p in space.params}
    assert by_name["lr"].log and by_name["weight_decay"].log
    assert by_name["batch_size"].type == by_name["width"].type == "categorical"
    for p in space.params:
        for value in p.boundary_values():
            TrainConfig.from_dict({p.name: value})


def test_overrides_replace_or_drop_defaults_and_flags_fix_parameters(tmp_path):
    path = tmp_path / "space.json"
    path.write_text(json.dumps({"lr": {"type": "float", "low": 0.05, "high": 0.5}, "flip": None}))
    space = tune.SearchSpace.load(path, fixed=frozenset({"width", "epochs"}))
    by_name = {p.name: p for p in space.params}
    assert by_name["lr"] == tune.Param("lr", "float", low=0.05, high=0.5, log=False)
    assert not {"flip", "width", "epochs"} & set(by_name)
    assert by_name["momentum"].high == 0.95  # untouched default


BAD_SPACES = [
    ({"learning_rate": {"type": "float", "low": 0.1, "high": 1}},
     "parameter 'learning_rate' is not a TrainConfig field"),
    ({"dataset": {"type": "categorical", "choices": ["cifar10"]}}, "'dataset' is not a hyperparameter"),
    ({"lr": {"type": "float", "low": 0.5, "high": 0.1}}, "low 0.5 must be below high 0.1"),
    ({"lr": {"type": "float", "low": 0.3, "high": 0.3}}, "low 0.3 must be below high 0.3"),
    ({"lr": {"type": "float", "low": 0, "high": 0.1, "log": True}}, "a log range needs low > 0, got low 0"),
    ({"lr": {"type": "flaot", "low": 0.01, "high": 0.1}}, "unknown type 'flaot'"),
    ({"lr": {"type": "float", "low": "0.01", "high": 0.1}}, "low must be a number, got '0.01'"),
    ({"lr": {"type": "float", "low": 0.01, "high": 0.1, "choices": [1]}}, "keys ['choices'] do not apply"),
    ({"lr": [0.01, 0.1]}, "must be an object like"),
    ({"width": {"type": "float", "low": 8, "high": 64}}, "'width' must be int, got 8.0"),
    ({"dropout": {"type": "float", "low": 0.0, "high": 1.0}}, "dropout=1.0 must be in [0, 1)"),
    ({"batch_size": {"type": "categorical", "choices": []}}, "choices must be a non-empty list"),
    ({"batch_size": {"type": "categorical", "choices": [64, 64]}}, "choices [64, 64] repeat a value"),
]


@pytest.mark.parametrize("space, message", BAD_SPACES)
def test_bad_search_space_exits_non_zero_naming_the_value_and_writes_nothing(tmp_path, capsys, space, message):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "space.json").write_text(json.dumps(space))
    out = tmp_path / "out"
    code = tune.main([*SMALL, "--space", str(tmp_path / "in" / "space.json"), "--studies-dir", str(out / "studies"),
                      "--best", str(out / "best_params.json")])
    assert code == 2
    err = capsys.readouterr().err
    assert message in err and str(tmp_path / "in" / "space.json") in err
    assert not out.exists()


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
    code = tune.main([*SMALL, *args])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and "secret" not in err
    assert list(tmp_path.iterdir()) == []  # no studies/, no best_params.json


def test_a_study_refuses_workers_scored_on_other_data(tmp_path):
    base = TrainConfig.from_dict({"dataset": "synthetic", "val_fraction": 0.1})
    config = tune.TuneConfig(base=base, space=tune.SearchSpace.load(), study_name="s", studies_dir=tmp_path)
    storage = tune.open_storage(tune.storage_url(config))
    tune.open_study(config, storage)
    tune.open_study(config, storage)  # the same settings load it again
    other = tune.TuneConfig(base=TrainConfig.from_dict({"seed": 1}, base), space=config.space, study_name="s",
                            studies_dir=tmp_path)
    with pytest.raises(tune.TuneError, match=r"'seed': \(0, 1\)"):
        tune.open_study(other, storage)


def test_a_new_study_starts_from_the_base_config_once(tmp_path):
    # rotation 20 is outside the default space (0-15): that one parameter is left to the sampler
    base = TrainConfig.from_dict({"dataset": "synthetic", "val_fraction": 0.1, "lr": 0.3, "rotation": 20.0})
    config = tune.TuneConfig(base=base, space=tune.SearchSpace.load(), study_name="s", studies_dir=tmp_path)
    storage = tune.open_storage(tune.storage_url(config))
    study = tune.open_study(config, storage)
    tune.open_study(config, storage)  # loading it again enqueues nothing more
    (first,) = study.get_trials(deepcopy=False)
    assert first.state == optuna.trial.TrialState.WAITING
    assert first.system_attrs["fixed_params"] == {p.name: getattr(base, p.name) for p in config.space.params
                                                  if p.name != "rotation"}
    assert first.system_attrs["fixed_params"]["lr"] == 0.3


# ---------------------------------------------------------------------------------------------------- trials


def _journal_study(tmp_path, name="s") -> optuna.Study:
    storage = tune.open_storage(str(tmp_path / f"{name}.journal"))
    return optuna.create_study(study_name=name, storage=storage, direction="maximize",
                               pruner=optuna.pruners.NopPruner())


def test_dead_local_workers_trials_are_failed_and_live_or_remote_ones_kept(tmp_path):
    study = _journal_study(tmp_path)
    gone = subprocess.Popen(["true"])
    gone.wait()
    owners = [(tune.HOST, gone.pid), (tune.HOST, os.getpid()), ("another-machine", gone.pid)]
    trials = [study.ask() for _ in owners]
    for trial, (host, pid) in zip(trials, owners):
        trial.set_user_attr("host", host)
        trial.set_user_attr("pid", pid)
    assert tune.fail_dead_trials(study) == [trials[0].number]
    assert [t.state for t in study.get_trials()] == [TrialState.FAIL, TrialState.RUNNING, TrialState.RUNNING]


def _fake_train(accuracies):
    """A trainer stand-in: reports ``accuracies[epoch - 1]`` after each epoch."""
    def train(config, *, on_epoch):
        for epoch in range(1, config.epochs + 1):
            on_epoch(epoch, {"eval_acc": accuracies[epoch - 1]})
        return SimpleNamespace(eval_accuracy=accuracies[config.epochs - 1])
    return train


def test_objective_reports_steps_on_the_longest_schedule_and_records_the_config(tmp_path):
    space = tune.SearchSpace.load(space_file(tmp_path, epochs={"type": "categorical", "choices": [2, 4]}))
    config = tune.TuneConfig(base=TrainConfig.from_dict({"dataset": "synthetic", "val_fraction": 0.1}), space=space,
                             studies_dir=tmp_path, pruner="none")
    study = _journal_study(tmp_path)
    objective = tune.make_objective(config, _fake_train([0.2, 0.4, 0.6, 0.8]))
    # enqueued, so both schedules run: six unseeded draws gave only 4-epoch trials about 3% of the time
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
                                          for k in tune.HYPERPARAMETERS}
        assert t.user_attrs["pid"] == os.getpid() and t.user_attrs["host"] == tune.HOST
    assert seen == {2, 4}


@pytest.mark.parametrize("pruner", ["median", "hyperband"])
def test_pruners_stop_hopeless_trials_early(tmp_path, pruner):
    space = tune.SearchSpace.load(space_file(tmp_path, lr={"type": "categorical", "choices": [0.0001, 0.1]}))
    config = tune.TuneConfig(base=TrainConfig.from_dict({"dataset": "synthetic", "val_fraction": 0.1, "epochs": 8}),
                             space=space, studies_dir=tmp_path, pruner=pruner, pruner_startup_trials=1,
                             pruner_warmup=1, sampler_seed=0)
    study = optuna.create_study(storage=tune.open_storage(str(tmp_path / "s.journal")), direction="maximize",
                                pruner=tune.make_pruner(config), sampler=optuna.samplers.RandomSampler(seed=0))
    good, hopeless = _fake_train([0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.92, 0.93]), _fake_train([0.1] * 8)
    objective = tune.make_objective(
        config, lambda c, on_epoch: (good if c.lr == 0.1 else hopeless)(c, on_epoch=on_epoch))
    study.optimize(objective, n_trials=12)
    pruned = study.get_trials(states=(TrialState.PRUNED,))
    assert pruned and all(t.params["lr"] == 0.0001 and len(t.intermediate_values) < 8 for t in pruned)
    assert all(t.state == TrialState.COMPLETE for t in study.get_trials() if t.params["lr"] == 0.1)


def test_a_trial_beyond_the_target_is_dropped_not_run(tmp_path):
    config = tune.TuneConfig(base=TrainConfig.from_dict({"dataset": "synthetic", "val_fraction": 0.1}),
                             space=tune.SearchSpace.load(), studies_dir=tmp_path, trials=1)
    study = _journal_study(tmp_path)
    study.ask()  # another worker's running trial takes the only slot
    objective = tune.make_objective(config, _fake_train([0.5] * 16))
    study.optimize(objective, n_trials=1, catch=(tune._Surplus,))
    last = study.get_trials()[-1]
    assert last.state == TrialState.FAIL and last.params == {} and "config" not in last.user_attrs


def test_plots_need_two_complete_trials_for_importances(tmp_path, capsys):
    study = _journal_study(tmp_path)
    study.enqueue_trial({"x": 0.3})
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)
    written = tune.write_plots(study, tmp_path / "one")
    assert sorted(Path(p).name for p in written) == ["history.png", "intermediate_values.png"]
    assert "parameter importances need 2 complete trials, the study has 1" in capsys.readouterr().out
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    written = tune.write_plots(study, tmp_path / "three")
    assert (tmp_path / "three" / "importances.png").read_bytes()[:8] == PNG_MAGIC
    assert len(written) == 3


# ---------------------------------------------------------------------------------------------------- a real study


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
    assert tuple(best) == tune.HYPERPARAMETERS
    config = TrainConfig.from_json(path)
    assert (config.lr, config.epochs, config.width, config.batch_size) == (0.1, 3, 8, 64)
    assert f"params written to {path}" in pruned_study.out
    result = subprocess.run([sys.executable, "-m", "training.train_torch", "--params", str(path), "--dataset",
                             "synthetic", "--dry-run", "--runs-dir", str(tmp_path / "runs")],
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


# ---------------------------------------------------------------------------------------------------- processes


def _worker_args(tmp: Path, name: str, trials: int, *extra: str) -> list[str]:
    space = space_file(tmp, lr={"type": "float", "low": 0.03, "high": 0.3, "log": True})
    # 2 epochs (the later --epochs wins): enough to kill a worker between a trial's first and last epoch
    return [*SMALL, "--epochs", "2", "--space", str(space), "--study-name", name, "--trials", str(trials),
            "--pruner", "none", "--studies-dir", str(tmp / "studies"), "--best", str(tmp / "best_params.json"),
            *extra]


def _assert_shared(study: optuna.Study, outputs: list[str], target: int) -> None:
    """The target reached exactly, every finished trial reported by exactly one worker, and both workers ran some."""
    done = finished_trials(study)
    assert len(done) == target
    reported = [[int(n) for n, _ in TRIAL_LINE.findall(out)] for out in outputs]
    flat = [n for numbers in reported for n in numbers]
    assert sorted(flat) == sorted(done), reported  # none lost, none run twice
    pids = {t.user_attrs["pid"] for t in study.get_trials(states=FINISHED)}
    assert len(pids) == 2, pids
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
    study = optuna.load_study(study_name="journal", storage=tune.open_storage(str(journal)))
    # one stdout for both workers: split the lines by the worker id they print
    by_worker: dict[str, list[str]] = {}
    for line in result.stdout.splitlines():
        if TRIAL_LINE.match(line):
            by_worker.setdefault(re.search(r", (\S+-\d+)\]", line).group(1), []).append(line)
    _assert_shared(study, ["\n".join(lines) for lines in by_worker.values()], target=4)
    assert len(by_worker) == 2
    assert TrainConfig.from_json(tmp_path / "best_params.json").epochs == 2


def _postgres_bin() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if not found:
        pytest.fail("PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb): install Debian's "
                    "'postgresql' package (apt-get install postgresql; .ci/system-deps.sh does it)")
    return Path(found[-1]).parent


@pytest.fixture(scope="session")
def postgres_url():
    """A throwaway PostgreSQL cluster on 127.0.0.1 (a free port) with one database; its URL, then it is gone."""
    bin_dir = _postgres_bin()
    # initdb and postgres refuse to run as root: run them as the postgres system user, in a directory it owns
    # (not under pytest's tmp, which only root may enter)
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    root = Path(tempfile.mkdtemp(prefix="tune-pg-"))
    if as_user:
        shutil.chown(root, "postgres", "postgres")
    data = root / "data"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    def pg(tool: str, *args: str) -> None:
        result = subprocess.run([*as_user, str(bin_dir / tool), *args], capture_output=True, text=True, cwd=root)
        assert result.returncode == 0, f"{tool} failed: {result.stdout}{result.stderr}"

    pg("initdb", "-D", str(data), "-U", "tune", "--auth=trust", "--no-sync")
    # fsync off: a throwaway test cluster; -k: the socket in a directory the postgres user owns
    pg("pg_ctl", "-D", str(data), "-l", str(root / "log"), "-w", "-t", "60", "start",
       "-o", f"-c listen_addresses=127.0.0.1 -p {port} -k {root} -c fsync=off")
    try:
        pg("createdb", "-h", "127.0.0.1", "-p", str(port), "-U", "tune", "optuna")
        yield f"postgresql://tune@127.0.0.1:{port}/optuna"
    finally:
        pg("pg_ctl", "-D", str(data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.slow
def test_two_workers_share_one_postgresql_study(tmp_path, postgres_url):
    args = _worker_args(tmp_path, "pg", 4, "--storage", postgres_url, "--no-final-test")
    procs = [subprocess.Popen(cli(*args), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outputs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err[-2000:] for _, err in outputs]
    study = optuna.load_study(study_name="pg", storage=postgres_url)
    _assert_shared(study, [out for out, _ in outputs], target=4)
    assert all(f"in {postgres_url}" in out for out, _ in outputs)
    assert not (tmp_path / "studies" / "pg.db").exists()


# ---------------------------------------------------------------------------------------------------- smoke runs


@pytest.mark.slow
def test_dry_run_writes_everything_into_a_fresh_temporary_directory(tmp_path):
    result = subprocess.run(cli("--dry-run", "--no-final-test"), cwd=tmp_path, capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.returncode == 0, result.stderr[-2000:]
    best = Path(re.search(r"params written to (\S+)", result.stdout).group(1))
    assert best.parent != tmp_path and best.parent.name.startswith("tune-dry-run-")
    assert len(TRIAL_LINE.findall(result.stdout)) == tune.DRY_RUN_TRIALS
    assert TrainConfig.from_json(best).width == 8
    assert list(tmp_path.iterdir()) == []
    shutil.rmtree(best.parent)


@pytest.mark.slow
def test_tensorflow_trainer_tunes_through_the_same_cli(tmp_path):
    python = Path(os.environ.get("TF_PYTHON", REPO / ".venv-tf" / "bin" / "python"))
    if not python.exists():
        pytest.fail(f"the TensorFlow environment's {python} is missing: create it (make install-tf) or point "
                    f"TF_PYTHON at one, to test tune-tf")
    result = subprocess.run(cli("--framework", "tensorflow", "--dry-run", "--best", str(tmp_path / "best.json"),
                                python=str(python)), cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    studies = Path(re.search(r"in sqlite:///(\S+)/tensorflow-synthetic\.db", result.stdout).group(1))
    report = json.loads((studies / "tensorflow-synthetic" / "report.json").read_text())
    assert report["framework"] == "tensorflow" and report["counts"]["complete"] == tune.DRY_RUN_TRIALS
    assert 0 <= report["final_test"]["accuracy"] <= 1
    assert TrainConfig.from_json(tmp_path / "best.json").epochs == 2
    shutil.rmtree(studies)


@pytest.mark.slow
def test_benchmark_smoke_writes_json_and_markdown(tmp_path):
    from benchmarks import tune as bench

    assert bench.main(["--smoke", "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "tune.json").read_text())
    assert result["smoke"] and result["shape"]["dataset"] == "synthetic"
    for key in ("baseline", "tuned"):
        assert 0 <= result[key]["accuracy"] <= 1 and result[key]["train_seconds"] > 0
        assert result[key]["seeds"] == [0] and result[key]["accuracy"] == result[key]["accuracies"][0]
    for pruner in ("median", "none"):
        counts = result["pruning"][pruner]["trials"]
        assert counts["complete"] + counts["pruned"] == bench.SMOKE_TRIALS
        assert result["pruning"][pruner]["mean_trial_seconds"] > 0
    assert set(result["goals"]) == {"tuned_beats_default", "training_time_ratio", "same_training_time",
                                    "time_per_trial_ratio", "pruning_cuts_time_per_trial"}
    markdown = (tmp_path / "tune.md").read_text()
    assert "| default |" in markdown and "pruning cuts the time per trial" in markdown
