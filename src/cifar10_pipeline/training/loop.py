"""The training loop, written once for both frameworks; each framework supplies a ``Trainer`` adapter.

The loop owns everything the frameworks share: the run directory and its resume prelude, step counts, the data
order per (seed, epoch), the one-cycle learning rate, the progress bar, the metrics row, the checkpoint
cadence and the final evaluation. An adapter owns what differs: the model and optimiser, one training step
(augmentation included), predicting logits, and saving or loading a checkpoint and the final model.

Every run is also an MLflow run (``tracking.runs.Recorder``) unless the config's ``tracking`` is off: hooked here,
once, so both frameworks log the same parameters, per-epoch metrics and files.

Resuming is exact: the data order depends only on (seed, epoch) and the augmentation only on the epoch's seed
(plus the step within the epoch), and every checkpoint holds the optimiser and RNG state.

Under torchrun every process runs this loop over the same global batches (``training.distributed``); the adapter
takes its process's shard and averages the gradients, and only the main process (rank 0) writes the run
directory, evaluates and saves. A group that torchrun restarts after a failed process continues its run from the
last checkpoint.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Protocol

import numpy as np
from tqdm import tqdm

from cifar10_pipeline.model import frameworks
from cifar10_pipeline.tracking.runs import FAILED, KILLED, Recorder, RunRef
from cifar10_pipeline.tracking.settings import tracking_uri
from cifar10_pipeline.training import source
from cifar10_pipeline.training.config import TrainConfig, one_cycle_lr
from cifar10_pipeline.training.datasets import TrainingData, prepare_for_training
from cifar10_pipeline.training.distributed import restarted_run
from cifar10_pipeline.training.run import Run, RunError, epoch_row

# an epoch's augmentation seed is seed * SEED_STRIDE + epoch: distinct for every (seed, epoch) of any run
# shorter than SEED_STRIDE epochs
SEED_STRIDE = 100_003
PROGRESS_EVERY = 10  # steps between progress-bar updates: each one waits for the device


class Trainer(Protocol):
    """One framework's side of the loop, built by ``make(config, data)`` (``TrainingData``) with the model and
    optimiser."""

    framework: str  # torch | tensorflow, as recorded in run.json
    model_file: str  # the final model's file name in the run directory
    checkpoint_file: str
    is_main: bool  # writes the run directory: rank 0 of a torchrun group, or the one process

    def share(self, value: Any) -> Any:
        """The main process's ``value`` (picklable) on every process of the group; ``value`` itself alone."""

    def close(self) -> None:
        """Leave the group once training is done (nothing alone)."""

    def describe(self) -> dict[str, Any]:
        """run.json entries: framework version, device, precision, parameter count."""

    def begin_epoch(self, seed: int) -> None:
        """Train mode; ``seed`` drives this epoch's augmentation."""

    def step(self, idx: np.ndarray, lr: float) -> tuple[Any, Any]:
        """One optimisation step on the training images ``idx`` (int64 [B], the global batch) at learning rate
        ``lr``; returns (mean loss, correct count) over the whole batch as device scalars, so that the loop does not
        wait for the device."""

    def predict(self, images: np.ndarray, live: bool = False) -> np.ndarray:
        """Eval-mode float32 logits [N, classes] for uint8 images [N, H, W, C], of the model ``save_model`` would
        write: the weights' moving average with ``config.ema``; of the weights being trained if ``live``."""

    def save_checkpoint(self, path: Path, epoch: int) -> None:
        """Everything a resumed run needs after ``epoch`` epochs, written atomically."""

    def load_checkpoint(self, path: Path) -> int:
        """Restore what ``save_checkpoint`` wrote (every process of a group calls it; the main one reads the file);
        returns its epoch."""

    def save_model(self, path: Path) -> None:
        """The final float32 inference model, with the arguments that rebuild it."""


@dataclass
class TrainResult:
    run: Run
    split: str  # the split that evaluated the run (TrainingData.eval_split): "test" or "val"
    accuracy: float  # the final model's on that split, as run.json's <split>_accuracy
    metrics: list[dict]


EpochCallback = Callable[[int, dict], None]  # (epoch, metrics row); may raise to stop (e.g. optuna.TrialPruned)


def train(config: TrainConfig, framework: str, *, resume: Run | None = None, on_epoch: EpochCallback | None = None,
          parent: RunRef | None = None, tags: Mapping[str, Any] | None = None) -> TrainResult:
    """Train ``config`` with ``framework`` (a name in ``model.frameworks``), which must be installed here."""
    return fit(frameworks.get(framework).load("trainer"), config, resume=resume, on_epoch=on_epoch, parent=parent,
               tags=tags)


def start_tracking(run: Run, config: TrainConfig, info: Mapping[str, Any], parent: RunRef | None,
                   tags: Mapping[str, Any] | None) -> Recorder:
    """The run's MLflow run (a child of ``parent``, e.g. a tuning study's), reopened when resumed; untracked when
    the config says so. Its reference goes into run.json, where ``make export`` and a resume find it."""
    if not config.tracking:
        return Recorder(None, run.path)
    keys = ("framework", "framework_version", "keras_version", "device", "precision", "dataset")
    code = info.get("source", {})
    code_tags = {source.GIT_COMMIT_TAG: code.get("git_commit"), "source_git_dirty": code.get("git_dirty"),
                 "source_files_sha256": code.get("files_sha256")}
    recorder = Recorder.start(run.path, uri=tracking_uri(config.runs_dir), dataset=config.dataset,
                              params={**config.to_dict(), "num_parameters": info.get("num_parameters")},
                              tags={**{k: info[k] for k in keys if k in info},
                                    **{k: v for k, v in code_tags.items() if v is not None}, **(tags or {})},
                              previous=info.get("mlflow"), parent=parent)
    if recorder.ref is not None:
        run.update_info(mlflow=recorder.ref.to_dict())
    return recorder


def fit(make: Callable[[TrainConfig, TrainingData], Trainer], config: TrainConfig, *, resume: Run | None = None,
        on_epoch: EpochCallback | None = None, parent: RunRef | None = None,
        tags: Mapping[str, Any] | None = None) -> TrainResult:
    """Train ``config`` with the adapter ``make`` builds; a run directory records everything, and MLflow too
    (``start_tracking``: ``parent`` and ``tags`` place the MLflow run). ``resume`` continues a run from its
    checkpoint."""
    data = prepare_for_training(config)
    trainer = make(config, data)
    main = trainer.is_main
    run, checkpoint = (open_run(config, trainer, resume) if main else (None, None))
    run, checkpoint = trainer.share((run, checkpoint))  # the other processes only read the path
    start_epoch = 0 if checkpoint is None else trainer.load_checkpoint(checkpoint)
    if main:
        run.truncate_metrics(start_epoch)  # rows of epochs after the checkpoint are trained again
        if checkpoint is not None:
            print(f"resuming {run.path} after epoch {start_epoch}/{config.epochs}", file=sys.stderr)
        run.update_info(**trainer.describe(), dataset=data.name, classes=list(data.classes))
        record_source(run, resumed=checkpoint is not None)
    # one MLflow run per training run: the main process records it, the others (torchrun ranks > 0) track nothing
    recorder = start_tracking(run, config, run.info, parent, tags) if main else Recorder(None, run.path)
    if main and checkpoint is not None:
        recorder.catch_up(run.metrics())  # the epochs up to the checkpoint that its MLflow run lacks
    stops: list[Exception] = []  # what on_epoch raised: a deliberate stop (a pruned trial), not a failure

    def epoch_done(epoch: int, row: dict) -> None:
        recorder.log_metrics(row, step=epoch)
        try:
            if on_epoch is not None:
                on_epoch(epoch, row)
        except Exception as e:
            stops.append(e)
            raise

    try:
        result = _epochs(trainer, data, config, run, start_epoch, epoch_done)
    except BaseException as e:
        stopped = isinstance(e, KeyboardInterrupt) or any(e is s for s in stops)
        recorder.end(KILLED if stopped else FAILED, f"{type(e).__name__}: {e}")
        raise
    recorder.finish({f"{result.split}_accuracy": result.accuracy})
    return result


def record_source(run: Run, resumed: bool) -> None:
    """run.json's ``source``: the code that started the run (``training.source``). Code that resumes a run started
    by other code (or by code no run.json named) warns, and is recorded as ``resumed_source``: from there on the run
    is not what one uninterrupted run of either would have given."""
    code = source.describe()
    started = run.info.get("source")
    if started is None and not resumed:
        run.update_info(source=code)
    elif started is None or started["files_sha256"] != code["files_sha256"]:
        why = ("its run.json does not say which code started it" if started is None else
               f"it was started by other code ({source.label(started)}) than resumes it ({source.label(code)})")
        print(f"warning: resuming {run.path}, but {why}: the epochs from here on may not be those of one "
              "uninterrupted run; run.json records the resuming code as resumed_source", file=sys.stderr)
        run.update_info(resumed_source=code)


def _epochs(trainer: Trainer, data: TrainingData, config: TrainConfig, run: Run, start_epoch: int,
            on_epoch: EpochCallback) -> TrainResult:
    """Epochs ``start_epoch``..``config.epochs`` of ``run``, ``on_epoch`` after each one's checkpoint, then the final
    model and evaluation."""
    main = trainer.is_main
    n = len(data.train_images)
    steps_per_epoch = math.ceil(n / config.batch_size)
    total_steps = steps_per_epoch * config.epochs
    eval_logits = None
    for epoch in range(start_epoch, config.epochs):
        t0 = time.perf_counter()
        order = np.random.default_rng([config.seed, epoch]).permutation(n)
        trainer.begin_epoch(config.seed * SEED_STRIDE + epoch)
        loss_sum, correct = 0.0, 0
        bar = tqdm(range(steps_per_epoch), desc=f"epoch {epoch + 1}/{config.epochs}", leave=False,
                   disable=None if main else True)  # one bar per group
        for i in bar:
            idx = order[i * config.batch_size:(i + 1) * config.batch_size]
            lr = one_cycle_lr(config, (epoch * steps_per_epoch + i + 1) / total_steps)
            loss, batch_correct = trainer.step(idx, lr)
            loss_sum = loss_sum + loss * len(idx)
            correct = correct + batch_correct
            if i % PROGRESS_EVERY == 0:
                bar.set_postfix(loss=f"{float(loss):.3f}", lr=f"{lr:.3g}")
        train_seconds = time.perf_counter() - t0
        if not main:  # the main process evaluates, logs and saves while the others wait at the next step
            continue

        evaluated = (epoch + 1) % config.eval_every == 0 or epoch + 1 == config.epochs
        eval_logits = trainer.predict(data.eval_images) if evaluated else None
        # with a moving average, the live weights too: whether the average beats them, on the same trajectory
        live_logits = trainer.predict(data.eval_images, live=True) if evaluated and config.ema else None
        row = epoch_row(epoch + 1, lr, float(loss_sum), int(correct), n, eval_logits, data.eval_labels,
                        data.eval_split, train_seconds, time.perf_counter() - t0, live_logits)
        run.log_epoch(row)
        trainer.save_checkpoint(run.path / trainer.checkpoint_file, epoch + 1)
        on_epoch(epoch + 1, row)

    accuracy, metrics = None, None
    if main:
        if eval_logits is None:  # resumed a run whose last epoch was done: nothing evaluated it here
            eval_logits = trainer.predict(data.eval_images)
        trainer.save_model(run.path / trainer.model_file)
        accuracy = run.finish(eval_logits, data.eval_labels, data.classes, data.eval_split)
        metrics = run.metrics()
    accuracy, metrics = trainer.share((accuracy, metrics))
    trainer.close()
    return TrainResult(run=run, split=data.eval_split, accuracy=accuracy, metrics=metrics)


def open_run(config: TrainConfig, trainer: Trainer, resume: Run | None) -> tuple[Run, Path | None]:
    """(the run, the checkpoint to resume from or None): ``resume``, else the run of this group's first attempt
    when torchrun restarted it, else a new run."""
    if resume is not None:
        checkpoint = resume.path / trainer.checkpoint_file
        if not checkpoint.is_file():
            raise RunError(f"{checkpoint} does not exist: the run stopped before its first epoch ended; start it "
                           "afresh")
        return resume, checkpoint
    restarted = restarted_run(config, trainer.framework)
    if restarted is not None:  # its checkpoint, or none when the failure came before the first one
        checkpoint = restarted.path / trainer.checkpoint_file
        return restarted, checkpoint if checkpoint.is_file() else None
    return Run.create(config, trainer.framework), None
