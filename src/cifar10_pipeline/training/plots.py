"""PNG plots of a run: learning curves and the confusion matrix (matplotlib, no display needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def plot_curves(metrics: list[dict[str, Any]], path: Path) -> None:
    epochs = [m["epoch"] for m in metrics]
    evaluated = [m for m in metrics if "eval_acc" in m]  # every epoch, or every eval_every-th and the last
    split = evaluated[0]["eval_split"] if evaluated else "eval"
    live = [m for m in evaluated if "eval_acc_live" in m]  # with ema: eval_* score the weights' moving average
    averaged = f"{split}, moving average" if live else split
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    ax_loss.plot(epochs, [m["train_loss"] for m in metrics], "o-", label="train")
    ax_loss.plot([m["epoch"] for m in evaluated], [m["eval_loss"] for m in evaluated], "o-", label=averaged)
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy loss", title="Loss")
    ax_acc.plot(epochs, [100 * m["train_acc"] for m in metrics], "o-", label="train (augmented)")
    ax_acc.plot([m["epoch"] for m in evaluated], [100 * m["eval_acc"] for m in evaluated], "o-", label=averaged)
    ax_acc.set(xlabel="epoch", ylabel="accuracy (%)", title="Accuracy")
    if live:
        ax_loss.plot([m["epoch"] for m in live], [m["eval_loss_live"] for m in live], "o--", label=f"{split}, live")
        ax_acc.plot([m["epoch"] for m in live], [100 * m["eval_acc_live"] for m in live], "o--", label=f"{split}, live")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_confusion(confusion: np.ndarray, classes: tuple[str, ...], path: Path, split: str) -> None:
    n = len(classes)
    # rows normalised to recall so that classes of different sizes are comparable
    recall = confusion / np.maximum(confusion.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(1.0 + 0.6 * n, 0.6 * n + 0.5))
    ax.imshow(recall, cmap="Blues", vmin=0, vmax=1)
    for i in range(n):
        for j in range(n):
            ax.text(j, i, str(confusion[i, j]), ha="center", va="center", fontsize=7,
                    color="white" if recall[i, j] > 0.5 else "black")
    ax.set_xticks(range(n), classes, rotation=45, ha="right")
    ax.set_yticks(range(n), classes)
    accuracy = np.trace(confusion) / max(confusion.sum(), 1)
    ax.set(xlabel="predicted", ylabel="true", title=f"Confusion matrix ({split}, accuracy {100 * accuracy:.2f}%)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
