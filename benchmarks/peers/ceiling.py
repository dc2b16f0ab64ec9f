"""The ceiling: onnxruntime alone, in this process, on the cores the servers get."""

from __future__ import annotations

import threading
import time

import numpy as np
import onnxruntime as ort

from benchmarks.peers import CPUS, Counts
from cifar10_pipeline.contract import INPUT_NAME, OUTPUT_NAME


def ceiling(session: ort.InferenceSession, pixels: np.ndarray, counts: Counts) -> dict:
    """onnxruntime alone, in this process, on the same cores: batch-1 images/s with as many threads calling
    ``run`` on ``session`` (opened as the service opens it) as there are CPUs; the best of
    ``counts.ceiling_runs``."""

    def run_for(seconds: float) -> float:
        done = [0] * CPUS
        deadline = time.perf_counter() + seconds

        def work(i: int) -> None:
            while time.perf_counter() < deadline:
                session.run([OUTPUT_NAME], {INPUT_NAME: pixels})
                done[i] += 1

        threads = [threading.Thread(target=work, args=(i,)) for i in range(CPUS)]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return sum(done) / (time.perf_counter() - started)

    run_for(min(1.0, counts.ceiling_s))  # warm up
    runs = [run_for(counts.ceiling_s) for _ in range(counts.ceiling_runs)]
    return {"threads": CPUS, "intra_op_threads": 1, "runs_images_per_s": runs, "images_per_s": max(runs)}
