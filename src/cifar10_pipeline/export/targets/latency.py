"""Batch-1 latency of a runner, timed where the engine runs (numpy and the standard library only: the worker of
another environment times its engine with it too)."""

from __future__ import annotations

import time
from typing import Protocol

import numpy as np

from cifar10_pipeline.contract import INPUT_NAME

WARMUP = 10  # untimed calls first: the first ones pay for allocations and, on some providers, compilation


class Infers(Protocol):
    def infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...


def batch1_latencies(runner: Infers, images: np.ndarray, runs: int, warmup: int = WARMUP) -> np.ndarray:
    """Seconds of each of ``runs`` calls of ``runner.infer`` on one image (float64 [runs]), cycling through uint8
    ``images`` [N, H, W, C], after ``warmup`` untimed calls."""
    for i in range(warmup):
        runner.infer({INPUT_NAME: images[i % len(images)][None]})
    seconds = np.empty(runs)
    for i in range(runs):
        image = images[i % len(images)][None]
        start = time.perf_counter()
        runner.infer({INPUT_NAME: image})
        seconds[i] = time.perf_counter() - start
    return seconds
