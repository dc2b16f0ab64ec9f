"""A training run's directory, shared by both trainers.

runs/<name>/
  config.json      the TrainConfig that made the run
  run.json         framework, versions, data set, classes, status, the code that trained it (``training.source``),
                   and the final model's accuracy on the split that evaluated it: test_accuracy, or val_accuracy
                   when tuning holds a validation split out
  metrics.jsonl    one JSON object per epoch
  checkpoint.*     latest epoch (model + optimiser + RNG state) for --resume
  model.*          final weights, with the spec that builds the model
  curves.png, confusion.png
runs/LAST.json     the path of the last run started, so `make export` finds it
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cifar10_pipeline.files import write_json
from cifar10_pipeline.training.config import TrainConfig

# run.json keys of older runs, whose final accuracy was eval_accuracy on eval_split: a resumed run drops them
FORMER_KEYS = ("eval_accuracy", "eval_split")


class RunError(RuntimeError):
    """A run directory that is missing or unusable."""


@dataclass
class Run:
    path: Path

    @classmethod
    def create(cls, config: TrainConfig, framework: str) -> Run:
        name = config.run_name or f"{framework}-{config.dataset}-{time.strftime('%Y%m%d-%H%M%S')}"
        path = Path(config.runs_dir) / name
        if (path / "config.json").exists():
            raise RunError(f"run directory {path} already exists: pick another --run-name or use --resume {path}")
        path.mkdir(parents=True, exist_ok=True)
        run = cls(path)
        write_json(path / "config.json", config.to_dict())
        run.update_info(framework=framework, status="running",
                        created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        (path / "metrics.jsonl").write_text("")
        write_json(Path(config.runs_dir) / "LAST.json", {"run": str(path)})
        return run

    @classmethod
    def open(cls, path: str | Path | None = None, runs_dir: str | Path = "runs") -> Run:
        """The run at ``path``, or the last run started under ``runs_dir``."""
        if path is None:
            pointer = Path(runs_dir) / "LAST.json"
            if not pointer.exists():
                raise RunError(f"no run recorded in {pointer}: train first (make train-torch or make train-tf) or pass "
                               "a run directory")
            path = json.loads(pointer.read_text())["run"]
        run = cls(Path(path))
        if not (run.path / "config.json").is_file():
            raise RunError(f"{run.path} is not a run directory (no config.json)")
        return run

    @property
    def config(self) -> TrainConfig:
        return TrainConfig.from_dict(json.loads((self.path / "config.json").read_text()))

    @property
    def info(self) -> dict[str, Any]:
        p = self.path / "run.json"
        return json.loads(p.read_text()) if p.exists() else {}

    def final_model(self, name: str) -> Path:
        """The path of the final model file ``name``; a RunError if the run never got that far."""
        path = self.path / name
        if not path.is_file():
            raise RunError(f"{self.path} has no final model ({name}): the run did not finish; resume it with --resume")
        return path

    def update_info(self, **values: Any) -> None:
        write_json(self.path / "run.json", {**self.info, **values})

    def metrics(self) -> list[dict[str, Any]]:
        lines = (self.path / "metrics.jsonl").read_text().splitlines()
        return [json.loads(line) for line in lines if line.strip()]

    def log_epoch(self, row: dict[str, Any]) -> None:
        with open(self.path / "metrics.jsonl", "a") as f:
            f.write(json.dumps(row) + "\n")
        print(json.dumps(row), flush=True)

    def truncate_metrics(self, epochs: int) -> None:
        """Keep the first ``epochs`` rows: a resumed run rewrites what came after its checkpoint."""
        rows = self.metrics()[:epochs]
        (self.path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))

    def finish(self, logits: np.ndarray, labels: np.ndarray, classes: tuple[str, ...], split: str) -> float:
        """Record the final evaluation on ``split`` (float logits [N, classes], int labels [N]) as run.json's
        ``<split>_accuracy`` and the confusion matrix, and plot; returns the accuracy."""
        from cifar10_pipeline.training.plots import plot_confusion, plot_curves  # matplotlib only when a run ends

        predictions = logits.argmax(1)
        accuracy = float((predictions == labels).mean())
        confusion = confusion_matrix(labels, predictions, len(classes))
        plot_curves(self.metrics(), self.path / "curves.png")
        plot_confusion(confusion, classes, self.path / "confusion.png", split)
        kept = {k: v for k, v in self.info.items() if k not in FORMER_KEYS}
        write_json(self.path / "run.json", {**kept, "status": "finished", f"{split}_accuracy": accuracy,
                                            "confusion": confusion.tolist(),
                                            "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
        return accuracy


def epoch_row(epoch: int, lr: float, loss_sum: float, correct: int, n: int, logits: np.ndarray | None,
              labels: np.ndarray, split: str, train_seconds: float, seconds: float,
              live_logits: np.ndarray | None = None) -> dict[str, Any]:
    """One metrics.jsonl line, the same keys from both trainers. ``loss_sum``/``correct`` are summed over the
    epoch's ``n`` augmented training images; ``logits`` float [M, classes] are the eval split's, None for an epoch
    not evaluated (``eval_every``), whose row has no eval_* keys. ``live_logits``: the live weights' where
    ``logits`` are their moving average's (``ema``), as eval_loss_live and eval_acc_live."""
    evaluation = {} if logits is None else {**scores(logits, labels), "eval_split": split}
    if live_logits is not None:
        evaluation |= scores(live_logits, labels, suffix="_live")
    return {
        "epoch": epoch,
        "lr": lr,
        "train_loss": loss_sum / n,
        "train_acc": correct / n,
        **evaluation,
        "train_seconds": round(train_seconds, 3),
        "seconds": round(seconds, 3),
        "images_per_second": round(n / train_seconds, 1),
    }


def scores(logits: np.ndarray, labels: np.ndarray, suffix: str = "") -> dict[str, float]:
    """eval_loss and eval_acc (names ending in ``suffix``) of logits [N, classes] against int labels [N]."""
    return {f"eval_loss{suffix}": cross_entropy(logits, labels),
            f"eval_acc{suffix}": float((logits.argmax(1) == labels).mean())}


def cross_entropy(logits: np.ndarray, labels: np.ndarray) -> float:
    """Mean cross-entropy (no label smoothing) of logits [N, classes] against int labels [N]."""
    z = logits.astype(np.float64)
    z -= z.max(axis=1, keepdims=True)
    log_probs = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return float(-log_probs[np.arange(len(labels)), labels].mean())


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, num_classes: int) -> np.ndarray:
    """[true, predicted] counts, int64 [num_classes, num_classes]."""
    return np.bincount(labels * num_classes + predictions, minlength=num_classes**2).reshape(num_classes, num_classes)
