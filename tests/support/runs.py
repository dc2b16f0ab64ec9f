"""The tiny training config of the trainer and export tests, the trainer's command line run in-process, metrics rows
without their timings, and the worker processes torchrun started."""

from __future__ import annotations

import contextlib
from pathlib import Path

from cifar10_pipeline.model.frameworks import Framework
from cifar10_pipeline.training.cli import main as train_main
from cifar10_pipeline.training.config import TrainConfig
from harness.server import process_tree

# the metrics keys that measure time: they differ between two runs that train the same model
TIMINGS = ("seconds", "train_seconds", "images_per_second")
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


def without_timings(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in TIMINGS} for r in rows]


def torchrun_workers(pid: int) -> dict[int, int]:
    """{rank: pid} of the torchrun workers below process ``pid`` (a torchrun agent, or a shell that started one): its
    first descendants with a RANK in their environment."""
    workers: dict[int, int] = {}
    for child in process_tree(pid)[1:]:  # parents first: a worker before anything it started
        with contextlib.suppress(OSError):  # gone meanwhile
            for variable in Path(f"/proc/{child}/environ").read_bytes().split(b"\0"):
                if variable.startswith(b"RANK="):
                    workers.setdefault(int(variable[5:]), child)
    return workers
