"""The tiny training config of the trainer and export tests, and the trainer's command line run in-process."""

from __future__ import annotations

from pathlib import Path

from cifar10_pipeline.model.frameworks import Framework
from cifar10_pipeline.training.cli import main as train_main
from cifar10_pipeline.training.config import TrainConfig

# Small enough to train in a CPU test, large enough to learn far above chance (10%).
# tta on: the shared export tests then prove that both frameworks' TTA survives the export
TINY = {"dataset": "synthetic", "epochs": 3, "width": 16, "batch_size": 128, "lr": 0.1, "tta": True,
        "max_train_samples": 3000, "max_test_samples": 1000}


def tiny_config(tmp_path: Path, **overrides) -> TrainConfig:
    return TrainConfig.from_dict({**TINY, "runs_dir": str(tmp_path / "runs"), "run_name": "tiny", **overrides})


def train_cli(framework: Framework, argv: list[str], capsys) -> tuple[int, str, str]:
    """``cifar10-train --framework <framework> ARGV`` in this process (a framework starts once per session, not once
    per case): (exit code, stdout, stderr); ``capsys`` is pytest's fixture."""
    try:
        code = train_main(["--framework", framework.name, *argv])
    except SystemExit as e:  # argparse: --help and usage errors
        code = e.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err
