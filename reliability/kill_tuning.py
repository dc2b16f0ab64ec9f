"""Kill tuning: ``kill -9`` one of 2 tuning workers sharing a PostgreSQL study, in the middle of a trial.

Two ``cifar10-tune --storage postgresql://...`` processes (one worker each, as on two machines) share one study on a
throwaway PostgreSQL server (``harness.postgres``). Once the victim (chosen by a seeded draw) is in the middle of a
trial (its first epoch reported) and the study has a finished trial, after a further seeded random delay, it gets
SIGKILL. The survivor alone must then finish the study: every requested trial complete or pruned, none of those
finished before the kill lost or changed, the killed trial marked FAIL and run again with its parameters
(training.tuning.workers: the dead pid, or a missed heartbeat on other machines, and Optuna's retry callback).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from cifar10_pipeline.training.tuning.space import DEFAULT_SPACE
from harness import REPO
from harness.postgres import postgres_bin, throwaway_postgres

NAME = "kill_tuning"
SEED = 13
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
# (trials, epochs, training images): a trial of the smoke takes a few seconds on 2 busy cores. At least 4 trials: the
# two workers start their first trials together and may finish them together, so the kill (which waits for a
# finished trial) needs the victim to start a second one
SIZES = {True: (4, 3, 800), False: (6, 3, 2000)}
STUDY = "kill-tuning"
POLL_S = 0.2
WAIT_S = 900  # the longest the survivor may take to finish the study


def worker_command(url: str, workdir: Path, trials: int, epochs: int, train_images: int) -> list[str]:
    # lr alone: the default space's widths and epochs would make trials minutes long
    space = workdir / "space.json"
    defaults = json.loads(DEFAULT_SPACE.read_text())
    space.write_text(json.dumps({**{k: None for k in defaults}, "lr": {"type": "float", "low": 0.03, "high": 0.3,
                                                                        "log": True}}))
    return [sys.executable, "-m", "cifar10_pipeline.training.tuning", "--framework", "torch", "--storage", url,
            "--study-name", STUDY, "--trials", str(trials), "--pruner", "none", "--space", str(space),
            # one process per command whatever GPUs the machine has (several would make more): the one killed
            "--no-final-test", "--workers", "1",
            "--studies-dir", str(workdir / "studies"), "--best", str(workdir / "best_params.json"),
            "--dataset", "synthetic", "--epochs", str(epochs), "--width", "8", "--batch-size", "64",
            "--max-train-samples", str(train_images), "--max-test-samples", "300", "--precision", "float32"]


def trials_of(url: str) -> list[FrozenTrial]:
    try:
        return optuna.load_study(study_name=STUDY, storage=url).get_trials()
    except KeyError:  # the workers have not created the study yet
        return []


def mid_trial(url: str, pid: int) -> FrozenTrial | None:
    """The trial ``pid`` is training, once it has reported its first epoch and another trial has finished (so
    that the kill can lose a finished trial, if anything does)."""
    trials = trials_of(url)
    if not any(t.state in FINISHED for t in trials):
        return None
    for t in trials:
        if t.state == TrialState.RUNNING and t.user_attrs.get("pid") == pid and t.intermediate_values:
            return t
    return None


def log_tail(path: Path, lines: int = 20) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""


def run(smoke: bool) -> dict[str, Any]:
    trials, epochs, train_images = SIZES[smoke]
    rng = random.Random(SEED)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="stress-kill-tuning-") as tmp, throwaway_postgres() as url:
        workdir = Path(tmp)
        command = worker_command(url, workdir, trials, epochs, train_images)
        env = {**os.environ, "OMP_NUM_THREADS": "1"}  # two workers on the machine's cores
        logs = [workdir / f"worker-{i}.log" for i in range(2)]
        started = time.monotonic()
        procs = []
        for log in logs:
            with log.open("wb") as out:
                procs.append(subprocess.Popen(command, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT))
        victim_index = rng.randrange(2)
        victim, survivor = procs[victim_index], procs[1 - victim_index]
        extra_delay = rng.uniform(0.0, 0.5)  # seconds after the first epoch's report: a random point in the trial

        killed, kept_before, killed_at = None, {}, None
        deadline = time.monotonic() + WAIT_S
        while killed is None and victim.poll() is None and time.monotonic() < deadline:
            target = mid_trial(url, victim.pid)
            if target is None:
                time.sleep(POLL_S)
                continue
            time.sleep(extra_delay)
            # frozen while its trial is looked up, so that the trial cannot end between the look and the kill
            os.kill(victim.pid, signal.SIGSTOP)
            before = trials_of(url)
            if next(t.state for t in before if t.number == target.number) != TrialState.RUNNING:
                os.kill(victim.pid, signal.SIGCONT)
                continue  # it ended during the delay: wait for the victim's next trial
            kept_before = {t.number: (t.state.name, t.value, t.params) for t in before if t.state in FINISHED}
            os.kill(victim.pid, signal.SIGKILL)
            killed_at = time.monotonic()
            victim.wait()
            killed = next(t for t in trials_of(url) if t.number == target.number)
        detected_after = None
        while survivor.poll() is None and time.monotonic() < deadline:
            if detected_after is None and killed is not None:
                state = next(t.state for t in trials_of(url) if t.number == killed.number)
                if state == TrialState.FAIL:
                    detected_after = time.monotonic() - killed_at
            time.sleep(POLL_S)
        if survivor.poll() is None:
            survivor.kill()
            survivor.wait()
        if victim.poll() is None:  # never killed: the study ended first
            victim.kill()
            victim.wait()
        wall = time.monotonic() - started
        final = trials_of(url)
        survivor_log = log_tail(logs[1 - victim_index])

    return figures(smoke, trials, epochs, train_images, final, killed, kept_before, killed_at - started
                   if killed_at else None, detected_after, survivor.returncode, victim_index, wall, survivor_log)


def figures(smoke: bool, trials: int, epochs: int, train_images: int, final: list[FrozenTrial],
            killed: FrozenTrial | None, kept_before: dict, killed_after: float | None, detected_after: float | None,
            survivor_exit: int, victim_index: int, wall: float, survivor_log: str) -> dict[str, Any]:
    by_number = {t.number: t for t in final}
    finished = [t for t in final if t.state in FINISHED]
    kept = {n: (by_number[n].state.name, by_number[n].value, by_number[n].params)
            for n in kept_before if n in by_number}
    dead = by_number.get(killed.number) if killed else None
    retries = [t for t in final if killed and t.system_attrs.get("failed_trial") == killed.number]
    rerun = next((t for t in retries if t.state in FINISHED), None)
    report: dict[str, Any] = {
        "name": NAME,
        "smoke": smoke,
        "framework": "torch",
        "storage": f"PostgreSQL {postgres_bin().parent.name} (throwaway, 127.0.0.1)",
        "workers": 2,
        "requested_trials": trials,
        "trial_shape": f"synthetic, {train_images} training images, width 8, {epochs} epochs",
        "seed": SEED,
        "killed_worker": victim_index,
        "killed_trial": None if dead is None else {
            "number": dead.number, "params": dead.params, "epochs_reported": len(killed.intermediate_values),
            "epochs": epochs, "state_after": dead.state.name},
        "killed_after_s": None if killed_after is None else round(killed_after, 2),
        "marked_failed_after_s": None if detected_after is None else round(detected_after, 2),
        "rerun": None if rerun is None else {"number": rerun.number, "state": rerun.state.name,
                                              "value": rerun.value, "params": rerun.params},
        "finished_trials": len(finished),
        "complete": sum(t.state == TrialState.COMPLETE for t in final),
        "pruned": sum(t.state == TrialState.PRUNED for t in final),
        "failed": sum(t.state == TrialState.FAIL for t in final),
        "finished_before_kill": len(kept_before),
        "finished_before_kill_kept": sum(kept.get(n) == v for n, v in kept_before.items()),
        "survivor_exit_code": survivor_exit,
        "wall_s": round(wall, 1),
    }
    report["goals"] = [
        {"goal": "a worker killed in the middle of a trial", "met": dead is not None,
         "figure": "no kill: the study ended first" if dead is None else
         f"trial {dead.number}, running with {len(killed.intermediate_values)}/{epochs} epochs reported, "
         f"{report['killed_after_s']} s into the study"},
        {"goal": "every requested trial complete or pruned", "met": len(finished) == trials,
         "figure": f"{len(finished)}/{trials}"},
        {"goal": "no trial finished before the kill lost or changed",
         "met": report["finished_before_kill_kept"] == len(kept_before),
         "figure": f"{report['finished_before_kill_kept']}/{len(kept_before)} kept"},
        {"goal": "the killed trial marked FAIL", "met": dead is not None and dead.state == TrialState.FAIL,
         "figure": "-" if dead is None else f"{dead.state.name}, {report['marked_failed_after_s']} s after the kill"},
        {"goal": "the killed trial run again with its parameters and finished",
         "met": rerun is not None and dead is not None and rerun.params == dead.params,
         "figure": "-" if rerun is None else f"trial {rerun.number} {rerun.state.name}, value {rerun.value:.4f}"},
        {"goal": "the surviving worker exits 0", "met": survivor_exit == 0, "figure": f"exit code {survivor_exit}"},
    ]
    if survivor_exit != 0:
        report["survivor_log_tail"] = survivor_log
    return report


def markdown(figures: dict) -> str:
    lines = [
        "## Tuning: kill -9 one of 2 workers on a PostgreSQL study",
        "",
        (f"{figures['workers']} workers (`python -m cifar10_pipeline.training.tuning --storage postgresql://...`, "
         f"{figures['framework']}), {figures['requested_trials']} trials requested of {figures['trial_shape']}; "
         f"{figures['storage']}; the worker to kill and the moment (after its trial's first epoch) drawn with seed "
         f"{figures['seed']}. {figures['finished_trials']} finished ({figures['complete']} complete, "
         f"{figures['pruned']} pruned), {figures['failed']} failed, in {figures['wall_s']} s."),
        "",
        "| goal | met | figure |",
        "|---|---|---|",
        *(f"| {g['goal']} | {'yes' if g['met'] else '**no**'} | {g['figure']} |" for g in figures["goals"]),
    ]
    return "\n".join(lines) + "\n"
