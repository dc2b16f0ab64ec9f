"""The workers share one stdout and one stderr: each of their lines must reach it in one write, or another worker's
line can land between a line and its newline (seen under load: two GPU lines run together)."""

from __future__ import annotations

import sys

import pytest

from cifar10_pipeline.training.tuning import workers
from cifar10_pipeline.training.tuning.errors import TuneError
from cifar10_pipeline.training.tuning.workers import say
from tests.support.streams import Piped


def test_a_worker_line_is_one_write_then_a_flush(monkeypatch):
    stdout = Piped()
    monkeypatch.setattr(sys, "stdout", stdout)
    say("worker host-1: GPU 0: NVIDIA H200 (CUDA_VISIBLE_DEVICES=GPU-0)")
    say("trial 3 COMPLETE: val_acc 0.9000")
    assert stdout.events == ["worker host-1: GPU 0: NVIDIA H200 (CUDA_VISIBLE_DEVICES=GPU-0)\n", "<flush>",
                            "trial 3 COMPLETE: val_acc 0.9000\n", "<flush>"]


def test_a_workers_error_is_one_line_on_stderr_and_exit_code_2(monkeypatch):
    def failing_work(config, deadline):
        raise TuneError("the study's storage refused the connection")

    stderr = Piped()
    monkeypatch.setattr(sys, "stderr", stderr)
    monkeypatch.setattr(workers, "work", failing_work)
    monkeypatch.setattr(workers, "worker_id", lambda: "host-7")
    with pytest.raises(SystemExit) as stopped:
        workers._worker_process(config=None, deadline=None, on_gpu=False)
    assert stopped.value.code == 2
    assert stderr.events == ["error: worker host-7: the study's storage refused the connection\n", "<flush>"]
