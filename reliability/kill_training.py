"""Kill training: ``kill -9`` PyTorch and TensorFlow training runs at random points, then ``--resume`` them.

Per framework: one uninterrupted run of a short synthetic config, then runs of the same config killed with
SIGKILL at a point chosen by watching the run (its metrics.jsonl and its checkpoint file): once a checkpoint exists
and a seeded random number of epochs (not the last) is logged, a seeded random fraction into the next epoch (timed
by that epoch in the uninterrupted run), or at once when the last epoch begins, whichever comes first. So on any
machine, fast or slow, the kill lands after a checkpoint and before the last epoch ends (a run could only finish
first if its whole last epoch passed between two looks, POLL_S apart). Each is resumed with
``cifar10-train --framework F --resume RUN_DIR``. A resumed run must end with the same metrics (every
epoch's row, timings aside) and the same final accuracy as the uninterrupted one, and redo at most one epoch: the
epochs it had completed (logged in metrics.jsonl) when killed, minus the epoch of the checkpoint the resume starts
from.

Each framework runs in its own environment (``model.frameworks``: ``.venv``, ``.venv-tf``).
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from cifar10_pipeline.model import frameworks
from harness import REPO

NAME = "kill_training"
SEED = 11
# (kills per framework, epochs, training images)
SIZES = {True: (1, 3, 600), False: (3, 4, 1500)}
TIMINGS = ("seconds", "train_seconds", "images_per_second")  # the only metrics that may differ between runs
POLL_S = 0.01  # between looks at the run's files
RUN_TIMEOUT_S = 900
RESUMED = re.compile(r"resuming \S+ after epoch (\d+)/(\d+)")


def trainer_command(framework: str, args: list[str]) -> list[str]:
    """``cifar10-train`` of ``framework`` in its own environment."""
    return [frameworks.get(framework).python(), "-m", "cifar10_pipeline.training", "--framework", framework, *args]


def train_args(runs: Path, name: str, epochs: int, train_images: int) -> list[str]:
    # float32: bfloat16 autocast is as deterministic, but float32 makes "the same metrics" mean bit-equal on any CPU
    return ["--dataset", "synthetic", "--epochs", str(epochs), "--width", "8", "--batch-size", "64",
            "--max-train-samples", str(train_images), "--max-test-samples", "300", "--precision", "float32",
            "--runs-dir", str(runs), "--run-name", name]


def outcome(run_dir: Path) -> tuple[list[dict], float]:
    """(metrics rows without timings, final test accuracy) of a finished run."""
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    info = json.loads((run_dir / "run.json").read_text())
    return [{k: v for k, v in r.items() if k not in TIMINGS} for r in rows], info["test_accuracy"]


def epochs_logged(run_dir: Path) -> int:
    path = run_dir / "metrics.jsonl"
    return path.read_text().count("\n") if path.exists() else 0


def run_to_end(command: list[str], log: Path) -> int:
    with log.open("ab") as out:
        return subprocess.run(command, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, timeout=RUN_TIMEOUT_S,
                              check=False).returncode


def kill_point(logged: int, checkpointed: bool, now: float, due: float | None, epoch: int, epochs: int,
               delay_s: float) -> tuple[float | None, str | None]:
    """One look at a run (``logged`` epochs in its metrics, a checkpoint or not, at ``now`` seconds): (when the
    drawn moment comes, once known; the kill point if the run is to be killed now, else None). The drawn moment
    is ``delay_s`` after the first look that sees ``epoch`` epochs logged and a checkpoint; the last epoch's
    beginning (``epochs - 1`` logged) kills at once, so the kill always lands before the run can end."""
    if logged < epoch or not checkpointed:
        return due, None
    due = now + delay_s if due is None else due
    if now >= due:
        return due, "drawn"
    return due, "last epoch began" if logged >= epochs - 1 else None


def kill_and_resume(framework: str, runs: Path, name: str, epochs: int, train_images: int, epoch: int,
                    fraction: float, epoch_s: list[float], reference: tuple[list[dict], float]) -> dict[str, Any]:
    """Start a run, SIGKILL it ``fraction`` of the way into epoch ``epoch + 1`` (timed from the moment ``epoch``
    epochs are logged and a checkpoint exists, scaled by that epoch's ``epoch_s`` in the uninterrupted run: the
    first epoch, with its compilation, is slower than the rest) or, if that comes first, as soon as the last epoch
    begins; resume it, and compare with ``reference``."""
    run_dir, log = runs / name, runs / f"{name}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(trainer_command(framework, train_args(runs, name, epochs, train_images)), cwd=REPO,
                                stdout=out, stderr=subprocess.STDOUT)
    started = time.monotonic()
    checkpoint = run_dir / frameworks.get(framework).checkpoint_file
    due, point = None, None  # when the drawn moment comes; which point the kill took
    while proc.poll() is None and time.monotonic() - started < RUN_TIMEOUT_S:
        due, point = kill_point(epochs_logged(run_dir), checkpoint.exists(), time.monotonic(), due, epoch, epochs,
                                fraction * epoch_s[epoch])
        if point is not None:
            break
        time.sleep(POLL_S)
    finished_first = proc.poll() is not None
    if not finished_first:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = time.monotonic() - started
    reached = epochs_logged(run_dir)
    since_checkpoint = time.time() - checkpoint.stat().st_mtime if checkpoint.exists() else None

    resumed_at = time.monotonic()
    code = run_to_end(trainer_command(framework, ["--resume", str(run_dir)]), log)
    resume_s = time.monotonic() - resumed_at
    match = RESUMED.search(log.read_text(errors="replace"))
    from_epoch = int(match[1]) if match else None
    result: dict[str, Any] = {
        "run": name,
        "killed_after_s": round(killed_at, 2),
        "finished_before_the_kill": finished_first,
        "kill_point": point,
        "epochs": epochs,
        "epoch_reached": reached,  # epochs completed (logged) when killed
        "resumed_from_epoch": from_epoch,
        "epochs_redone": None if from_epoch is None else reached - from_epoch,
        "seconds_since_checkpoint": None if since_checkpoint is None else round(since_checkpoint, 2),
        "resume_exit_code": code,
        "resume_s": round(resume_s, 1),
    }
    if code == 0:
        rows, accuracy = outcome(run_dir)
        result.update(final_accuracy=accuracy, same_metrics=rows == reference[0] and accuracy == reference[1])
    else:
        result.update(final_accuracy=None, same_metrics=False, log_tail=log.read_text(errors="replace")[-2000:])
    return result


def run(smoke: bool) -> dict[str, Any]:
    kills, epochs, train_images = SIZES[smoke]
    rng = random.Random(SEED)
    report: dict[str, Any] = {"name": NAME, "smoke": smoke, "seed": SEED, "kills_per_framework": kills,
                              "config": f"synthetic, {train_images} training images, width 8, {epochs} epochs, "
                                        "float32", "frameworks": {}}
    with tempfile.TemporaryDirectory(prefix="stress-kill-training-") as tmp:
        for framework in frameworks.NAMES:
            runs = Path(tmp) / framework
            runs.mkdir()
            started = time.monotonic()
            code = run_to_end(trainer_command(framework, train_args(runs, "uninterrupted", epochs, train_images)),
                              runs / "uninterrupted.log")
            if code != 0:
                report["frameworks"][framework] = {
                    "error": f"the uninterrupted run exited {code}",
                    "log_tail": (runs / "uninterrupted.log").read_text(errors="replace")[-2000:]}
                continue
            rows, accuracy = outcome(runs / "uninterrupted")
            wall = time.monotonic() - started
            epoch_s = _epoch_seconds(runs / "uninterrupted")
            # a seeded random point: after which epoch (the first at least, the last excluded: the kill comes when
            # the last begins at the latest), and how far into the next
            results = [kill_and_resume(framework, runs, f"killed-{i + 1}", epochs, train_images,
                                       rng.randrange(1, max(2, epochs - 1)), rng.uniform(0.0, 0.9), epoch_s,
                                       (rows, accuracy))
                       for i in range(kills)]
            report["frameworks"][framework] = {"uninterrupted": {"final_accuracy": accuracy, "wall_s": round(wall, 1),
                                                                 "epoch_s": [round(t, 1) for t in epoch_s]},
                                               "kills": results}
    report["goals"] = goals(report)
    return report


def _epoch_seconds(run_dir: Path) -> list[float]:
    """Seconds each epoch of a run took (training and evaluation), from its metrics."""
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [json.loads(line)["seconds"] for line in lines if line.strip()]


def goals(report: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for framework, result in report["frameworks"].items():
        if "error" in result:
            out.append({"goal": f"{framework}: killed runs resume", "met": False, "figure": result["error"]})
            continue
        # killed after a checkpoint and before the last epoch ended
        kills = [k for k in result["kills"] if not k["finished_before_the_kill"] and k["epoch_reached"] < k["epochs"]]
        same = sum(k["same_metrics"] for k in kills)
        redone = [k["epochs_redone"] for k in kills if k["epochs_redone"] is not None]
        out += [
            {"goal": f"{framework}: runs killed mid-way", "met": len(kills) == len(result["kills"]),
             "figure": f"{len(kills)} of {len(result['kills'])} killed after a checkpoint, before the last epoch "
                       "ended"},
            {"goal": f"{framework}: --resume finishes with the uninterrupted run's metrics",
             "met": bool(kills) and same == len(kills),
             "figure": f"{same}/{len(kills)} identical (accuracy {result['uninterrupted']['final_accuracy']:.4f})"},
            {"goal": f"{framework}: at most 1 epoch redone",
             "met": len(redone) == len(kills) and max(redone, default=0) <= 1,
             "figure": f"epochs redone {redone}"},
        ]
    return out


def markdown(figures: dict) -> str:
    lines = [
        "## Training: kill -9 and --resume",
        "",
        (f"Each framework: an uninterrupted run, then {figures['kills_per_framework']} run(s) of the same config "
         f"({figures['config']}) killed with SIGKILL at a point chosen by watching the run: once a checkpoint "
         f"exists and a seeded random number of epochs (seed {figures['seed']}; not the last) is logged, a seeded "
         "random fraction into the next epoch (\"drawn\"), or when the last epoch begins if that comes first "
         "(\"last epoch began\"): after a checkpoint and before the last epoch ends, on a fast machine or a slow "
         "one. Each is resumed with `--resume RUN_DIR`. Epochs redone: epochs completed when killed minus the "
         "checkpoint's epoch."),
        "",
        ("| framework | run | kill point | killed after (s) | epoch reached | resumed from | epochs redone "
         "| work since checkpoint (s) | final accuracy | uninterrupted | same metrics |"),
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for framework, result in figures["frameworks"].items():
        if "error" in result:
            lines.append(f"| {framework} | - | - | - | - | - | - | - | - | {result['error']} | **no** |")
            continue
        reference = result["uninterrupted"]["final_accuracy"]
        for k in result["kills"]:
            accuracy = "-" if k["final_accuracy"] is None else f"{k['final_accuracy']:.4f}"
            lines.append(f"| {framework} | {k['run']} | {k['kill_point'] or 'none'} | {k['killed_after_s']} | "
                         f"{k['epoch_reached']} | "
                         f"{k['resumed_from_epoch']} | {k['epochs_redone']} | {k['seconds_since_checkpoint']} | "
                         f"{accuracy} | {reference:.4f} | {'yes' if k['same_metrics'] else '**no**'} |")
    lines += ["", "| goal | met | figure |", "|---|---|---|",
              *(f"| {g['goal']} | {'yes' if g['met'] else '**no**'} | {g['figure']} |" for g in figures["goals"])]
    return "\n".join(lines) + "\n"
