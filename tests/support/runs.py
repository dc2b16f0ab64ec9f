"""The tiny training config of the trainer and export tests."""

from __future__ import annotations

from pathlib import Path

from cifar10_pipeline.training.config import TrainConfig

# Small enough to train in a CPU test, large enough to learn far above chance (10%).
# tta on: the shared export tests then prove that both frameworks' flip TTA survives the export
TINY = {"dataset": "synthetic", "epochs": 3, "width": 16, "batch_size": 128, "lr": 0.1, "tta": True,
        "max_train_samples": 3000, "max_test_samples": 1000}


def tiny_config(tmp_path: Path, **overrides) -> TrainConfig:
    return TrainConfig.from_dict({**TINY, "runs_dir": str(tmp_path / "runs"), "run_name": "tiny", **overrides})
