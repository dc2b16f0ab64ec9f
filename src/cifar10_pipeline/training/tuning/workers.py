"""Running trials: the objective, a worker's loop, local worker processes, and failing a dead worker's trials.

Every trial fills a ``TrainConfig`` from the search space and runs the framework's own ``train()`` in the
worker's process, scored on a validation split held out of the training set (``val_fraction``), never on the
test set. After each epoch the validation accuracy is reported to Optuna and the pruner may stop a hopeless trial.
Its run goes to ``studies/<study>/runs/<host>-<pid>/trial-NNNN``.

Trials are counted, not run blindly: ``--trials N`` is the target number of finished (complete or pruned) trials
of the whole study, so every worker runs only what is missing and returns once the study has reached it. A trial
left RUNNING by a killed worker is marked FAIL: at once when that worker ran on this machine (its process is
gone), after a missed heartbeat (``GRACE_S``) on database storages otherwise; failed trials do not count, and each
is queued again with its parameters (Optuna's RetryHeartbeatStaleTrialCallback, up to ``MAX_RETRIES`` times), so
a worker's death costs that trial's time but never the point of the search space it was trying.
"""

from __future__ import annotations

import contextlib
import functools
import multiprocessing
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator, TextIO

import optuna
from optuna.trial import FrozenTrial, TrialState

from cifar10_pipeline.model import frameworks
from cifar10_pipeline.model.frameworks import FrameworkError
from cifar10_pipeline.tracking.runs import RunRef, tag_run
from cifar10_pipeline.training.config import TrainConfig
from cifar10_pipeline.training.gpus import Gpu, visible_gpus
from cifar10_pipeline.training.loop import TrainResult, train
from cifar10_pipeline.training.run import Run
from cifar10_pipeline.training.tuning.config import TuneConfig
from cifar10_pipeline.training.tuning.errors import USER_ERRORS, TuneError
from cifar10_pipeline.training.tuning.space import HYPERPARAMETERS
from cifar10_pipeline.training.tuning.study import (PARENT_ATTR, experimental_ok, open_storage, open_study,
                                                    retry_dead_trial, storage_url)

POLL_S = 1.0  # how often a worker waiting for other workers' last trials looks again (seconds)
HOST = socket.gethostname()


def worker_id() -> str:
    """Names this process in trial attributes and run directories (a forked worker gets its own)."""
    return f"{HOST}-{os.getpid()}"


def quiet_optuna() -> None:
    # our progress lines replace optuna's per-trial log lines; its warning for a failed trial would repeat the
    # error we raise anyway (and call a surplus trial a failure)
    optuna.logging.set_verbosity(optuna.logging.ERROR)


def load_trainer(framework: str) -> Callable[..., TrainResult]:
    """``training.loop.train`` for ``framework``, whose adapter is imported now: a TuneError when it cannot be."""
    try:
        frameworks.get(framework).load("trainer")
    except FrameworkError as e:
        raise TuneError(str(e)) from None
    return functools.partial(train, framework=framework)


def count_finished(trials: list[FrozenTrial]) -> int:
    return sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)


def trial_seconds(trial: FrozenTrial) -> float:
    return (trial.datetime_complete - trial.datetime_start).total_seconds()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, but belongs to another user
        pass
    return True


def fail_dead_trials(study: optuna.Study) -> list[int]:
    """Mark FAIL the running trials whose worker is gone and queue each again (``retry_dead_trial``); returns the
    numbers of those this call failed by pid.

    Trials of this machine: their process no longer exists (a pid reused by another process hides a dead trial
    until its heartbeat runs out). Database storages also fail any trial whose heartbeat is older than GRACE_S,
    which covers workers on other machines (the storage calls ``retry_dead_trial``, see ``open_storage``).
    Journal storage has no heartbeat: it is for one machine.
    """
    with experimental_ok():
        optuna.storages.fail_stale_trials(study)
    dead = [t for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
            if t.user_attrs.get("host") == HOST and "pid" in t.user_attrs and not _alive(t.user_attrs["pid"])]
    failed = []
    for trial in dead:
        try:
            study.tell(trial.number, state=TrialState.FAIL)
        except (ValueError, optuna.exceptions.UpdateFinishedTrialError):
            continue  # another worker marked it first, and queued its retry
        retry_dead_trial(study, trial)
        failed.append(trial.number)
    return failed


class _Surplus(Exception):
    """This trial would overshoot the target: other workers started the last ones at the same moment."""


def make_objective(config: TuneConfig, train: Callable[..., Any],
                   parent: RunRef | None = None) -> Callable[[optuna.Trial], float]:
    """Optuna's objective: one trial's training run, a child of the study's MLflow run ``parent`` when tracked."""
    runs_dir = config.study_dir / "runs" / worker_id()  # one per worker: runs/LAST.json is not shared

    def objective(trial: optuna.Trial) -> float:
        # trial numbers come from the storage in order, so the first `trials` live ones win any race
        ahead = trial.study.get_trials(deepcopy=False,
                                       states=(TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING))
        if sum(t.number < trial.number for t in ahead) >= config.trials:
            raise _Surplus(f"trial {trial.number}: the study's {config.trials} trials are already taken")
        params = config.space.suggest(trial)
        train_config = TrainConfig.from_dict(
            {**params, "runs_dir": str(runs_dir), "run_name": f"trial-{trial.number:04d}"}, config.base)
        trial.set_user_attr("host", HOST)
        trial.set_user_attr("pid", os.getpid())
        trial.set_user_attr("run_dir", str(runs_dir / train_config.run_name))
        trial.set_user_attr("config", {k: getattr(train_config, k) for k in HYPERPARAMETERS})
        # steps count epochs of the longest schedule, so a 4-epoch trial reports at steps 4, 8, 12, 16 of a
        # 16-epoch one: the pruner compares trials at the same point of their one-cycle learning-rate schedule
        scale = config.max_epochs / train_config.epochs

        def on_epoch(epoch: int, row: dict) -> None:
            if "eval_acc" not in row:  # an epoch that eval_every skips
                return
            trial.report(row["eval_acc"], round(epoch * scale))
            if trial.should_prune():
                raise optuna.TrialPruned(f"epoch {epoch}/{train_config.epochs}: validation accuracy "
                                         f"{row['eval_acc']:.4f}")

        return train(train_config, on_epoch=on_epoch, parent=parent,
                     tags={"optuna.study": config.name, "optuna.trial": trial.number}).accuracy

    return objective


def say(line: str, stream: TextIO | None = None) -> None:
    """``line`` and its newline to ``stream`` (stdout if None) in one write: the workers share stdout and stderr, and
    print writes the newline apart, so another worker's line could land between a line and its end."""
    stream = sys.stdout if stream is None else stream
    stream.write(line + "\n")
    stream.flush()


def progress_line(study: optuna.Study, trial: FrozenTrial, target: int) -> None:
    """One line per trial this worker finished: number, state, validation accuracy, time, params."""
    if trial.state == TrialState.FAIL:  # failures other than _Surplus propagate and never get here
        say(f"trial {trial.number} dropped: other workers started the study's last trials")
        return
    epochs = trial.user_attrs.get("config", {}).get("epochs")
    where = f" after {len(trial.intermediate_values)}/{epochs} epochs" if trial.state == TrialState.PRUNED else ""
    value = "-" if trial.value is None else f"{trial.value:.4f}"
    params = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in trial.params.items())
    done = count_finished(study.get_trials(deepcopy=False))
    say(f"trial {trial.number} {trial.state.name}{where}: val_acc {value} in {trial_seconds(trial):.1f} s "
        f"[{done}/{target} finished, {worker_id()}] {params}")


def tag_trial(trial: FrozenTrial) -> None:
    """The trial's Optuna state and value as tags of its MLflow run (PRUNED, COMPLETE, FAIL), once it ended."""
    run_dir = trial.user_attrs.get("run_dir")
    if run_dir and (Path(run_dir) / "run.json").is_file():
        tag_run(Run(Path(run_dir)).info.get("mlflow"), {"optuna.state": trial.state.name, "optuna.value": trial.value})


def work(config: TuneConfig, deadline: float | None) -> None:
    """Run trials until the study has ``config.trials`` finished ones (or ``deadline``, a time.time())."""
    study = open_study(config, open_storage(storage_url(config)))
    parent = RunRef.from_dict(study.user_attrs.get(PARENT_ATTR)) if config.base.tracking else None
    objective = make_objective(config, load_trainer(config.framework), parent)
    waiting_for: set[int] = set()
    while deadline is None or time.time() < deadline:
        fail_dead_trials(study)
        trials = study.get_trials(deepcopy=False)
        running = {t.number for t in trials if t.state == TrialState.RUNNING}
        if count_finished(trials) >= config.trials:
            return
        if count_finished(trials) + len(running) >= config.trials:
            # the last trials run elsewhere; wait in case their worker dies and they must be run again
            if running != waiting_for:
                say(f"waiting for trials {sorted(running)} of other workers")
                waiting_for = running
            time.sleep(POLL_S)
            continue
        study.optimize(objective, n_trials=1, catch=(_Surplus,),
                       callbacks=[lambda study, trial: progress_line(study, trial, config.trials),
                                  lambda study, trial: tag_trial(trial)])


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """``values`` in os.environ inside the block, for the processes started there to inherit; restored after."""
    saved = {n: os.environ.get(n) for n in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for n, value in saved.items():
            if value is None:
                os.environ.pop(n)
            else:
                os.environ[n] = value


def _threads_per_worker(workers: int) -> contextlib.AbstractContextManager[None]:
    """Split this machine's cores between worker processes started inside the block (they read it at import)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    threads = str(max(1, cores // workers))
    names = ("OMP_NUM_THREADS", "TF_NUM_INTRAOP_THREADS")
    return _environment({n: os.environ.get(n) or threads for n in names})


def assign_gpus(workers: int, gpus: list[Gpu]) -> list[Gpu | None]:
    """Worker i's GPU: the visible GPUs in turn (several workers share one when there are fewer GPUs than workers);
    None for every worker where none is visible."""
    return [gpus[i % len(gpus)] if gpus else None for i in range(workers)]


def _worker_process(config: TuneConfig, deadline: float | None, on_gpu: bool) -> None:
    quiet_optuna()
    if on_gpu:  # the worker's own view, which proves its CUDA_VISIBLE_DEVICES took
        say(f"worker {worker_id()}: {', '.join(map(str, visible_gpus()))} "
            f"(CUDA_VISIBLE_DEVICES={os.environ['CUDA_VISIBLE_DEVICES']})")
    try:
        work(config, deadline)
    except USER_ERRORS as e:
        say(f"error: worker {worker_id()}: {e}", sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)


def run_workers(config: TuneConfig, deadline: float | None) -> None:
    """Run ``config.workers`` workers: this process alone for one; else as many processes, each given its own GPU
    (``assign_gpus``) through CUDA_VISIBLE_DEVICES unless the config trains on the CPU."""
    if config.workers == 1:
        work(config, deadline)
        return
    ctx = multiprocessing.get_context("spawn")  # a fresh interpreter: no forked framework state
    gpus = [] if config.base.device == "cpu" else visible_gpus()
    procs = []
    with _threads_per_worker(config.workers):
        for i, gpu in enumerate(assign_gpus(config.workers, gpus)):
            procs.append(ctx.Process(target=_worker_process, args=(config, deadline, gpu is not None),
                                     name=f"tune-worker-{i}"))
            # set before the process starts, so that nothing it imports can see another GPU; by UUID, as CUDA's
            # device numbering need not be nvidia-smi's
            with _environment({"CUDA_VISIBLE_DEVICES": gpu.uuid} if gpu else {}):
                procs[-1].start()
    for p in procs:
        p.join()
    failed = [f"pid {p.pid} exit code {p.exitcode}" for p in procs if p.exitcode != 0]
    if failed:
        raise TuneError(f"{len(failed)} of {config.workers} workers failed ({', '.join(failed)}); "
                        f"finished trials are kept, fix the error and run the command again")
