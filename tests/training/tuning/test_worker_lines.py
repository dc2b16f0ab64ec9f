"""The workers share one stdout: each of their lines must reach it in one write, or another worker's line can land
between a line and its newline (seen under load: two GPU lines run together)."""

from __future__ import annotations

import sys

from cifar10_pipeline.training.tuning.workers import say
from tests.support.streams import Piped


def test_a_worker_line_is_one_write_then_a_flush(monkeypatch):
    stdout = Piped()
    monkeypatch.setattr(sys, "stdout", stdout)
    say("worker host-1: GPU 0: NVIDIA H200 (CUDA_VISIBLE_DEVICES=GPU-0)")
    say("trial 3 COMPLETE: val_acc 0.9000")
    assert stdout.events == ["worker host-1: GPU 0: NVIDIA H200 (CUDA_VISIBLE_DEVICES=GPU-0)\n", "<flush>",
                            "trial 3 COMPLETE: val_acc 0.9000\n", "<flush>"]
