"""The same weights in torch eager and in onnxruntime: batch-1 latency and batch-256 throughput."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

from benchmarks.service import Counts
from harness.engines import onnx_forward, time_forward


def load_torch(checkpoint: Path):
    from cifar10_pipeline.model.torch_net import load_model_file

    return load_model_file(checkpoint)


def engines(checkpoint: Path, onnx_path: Path, counts: Counts) -> list[dict]:
    """Batch-1 latency and batch-256 throughput of the same weights in torch eager and onnxruntime."""
    import torch

    model = load_torch(checkpoint)
    ort_run, shape = onnx_forward(onnx_path)

    def torch_run(x):
        with torch.no_grad():
            return model(torch.from_numpy(x)).numpy()

    runs = {f"torch {torch.__version__} eager": torch_run, f"onnxruntime {ort.__version__}": ort_run}
    rows = [{"engine": name, **time_forward(run, shape, counts.latency_runs, counts.throughput_runs)}
            for name, run in runs.items()]
    many = np.random.default_rng(1).integers(0, 256, (256, *shape), dtype=np.uint8)
    diff = float(np.abs(torch_run(many) - ort_run(many)).max())
    for row in rows:
        row["max_abs_logit_diff"] = diff  # same weights: the two agree
    return rows
