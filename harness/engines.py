"""A model's forward pass, timed: batch-1 latency and batch-256 throughput on random images of its input shape.

What serving a model costs on this machine, apart from the service around it: the serving benchmark times the same
weights in torch and in onnxruntime with it, the training benchmark each goal's exported file, and the GPU check
onnxruntime on CUDA and on the CPU."""

from __future__ import annotations

from pathlib import Path
from time import perf_counter
from typing import Callable

import numpy as np

from cifar10_pipeline.contract import INPUT_DTYPE, INPUT_NAME, OUTPUT_NAME

BATCH = 256  # the throughput batch: large enough that per-call overhead stops mattering on 2 cores
# untimed calls of each batch size: caches, lazy initialisation, onnxruntime's first-run allocations (on CUDA also
# its kernels' loading and cuDNN's algorithm search)
WARMUP_CALLS = 3

Forward = Callable[[np.ndarray], object]  # uint8 images [N, H, W, C] -> logits


def time_forward(forward: Forward, shape: tuple[int, int, int], latency_runs: int, throughput_runs: int) -> dict:
    """``forward`` on seeded random uint8 images of ``shape`` (H, W, C): the median of ``latency_runs`` batch-1
    calls (``batch1_p50_ms``) and images per second over ``throughput_runs`` batch-256 calls
    (``batch256_images_per_s``), after ``WARMUP_CALLS`` of each."""
    rng = np.random.default_rng(0)
    one = rng.integers(0, 256, (1, *shape), dtype=INPUT_DTYPE)
    many = rng.integers(0, 256, (BATCH, *shape), dtype=INPUT_DTYPE)
    for _ in range(WARMUP_CALLS):
        forward(one), forward(many)
    latencies = []
    for _ in range(latency_runs):
        t0 = perf_counter()
        forward(one)
        latencies.append(perf_counter() - t0)
    t0 = perf_counter()
    for _ in range(throughput_runs):
        forward(many)
    seconds = perf_counter() - t0
    return {"batch1_p50_ms": 1000 * float(np.percentile(latencies, 50)),
            "batch256_images_per_s": BATCH * throughput_runs / seconds}


def onnx_forward(path: Path, provider: str = "CPUExecutionProvider") -> tuple[Forward, tuple[int, int, int]]:
    """An onnxruntime session on ``provider`` for the ONNX file at ``path`` as a forward pass, and its images'
    (H, W, C). A RuntimeError where the session would run elsewhere: onnxruntime falls back to the CPU quietly
    (a CUDA provider whose libraries are missing), and a figure timed there must not be named after ``provider``."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=[provider])
    if session.get_providers()[0] != provider:
        raise RuntimeError(f"onnxruntime runs {path} on {session.get_providers()}, not {provider}")
    _, h, w, c = next(i for i in session.get_inputs() if i.name == INPUT_NAME).shape  # [N, H, W, C], N symbolic
    return (lambda images: session.run([OUTPUT_NAME], {INPUT_NAME: images})[0]), (h, w, c)
