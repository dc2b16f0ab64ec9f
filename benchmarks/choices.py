"""Why the defaults are what they are: each speed choice the code makes, timed both ways on this machine.

``python -m benchmarks.choices --out bench-results`` (``--smoke``: a few steps, to show that it runs).
- PyTorch training step (``training.torch_trainer``): float32 against bfloat16 autocast (``precision``), and
  channels_last against the default memory layout.
- PyTorch evaluation: ``EVAL_BATCH`` 256 against 1024 images per call.
- TensorFlow training step (``training.keras_trainer``, run in TensorFlow's environment, ``model.frameworks``):
  float32 against mixed bfloat16, and with against without XLA.
- onnxruntime (``inference``): CPU time per batch-1 call of the default network with 1 against 2 intra-op
  threads (``INFERENCE_INTRA_OP_THREADS``).
Every step is timed on the project's own trainer adapter (``TorchTrainer``, ``KerasTrainer``) with the default
network (width 32) at batch 128 on Fashion-MNIST-shaped data (28x28x1, synthetic pixels: speed does not depend
on them). Figures go to ``--out`` as ``choices.json`` and ``choices.md``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable
from unittest import mock

import numpy as np

from cifar10_pipeline.model import frameworks
from harness import REPO
from harness.report import machine, write_report

SHAPE = (28, 28, 1)
BATCH = 128
TRAIN_IMAGES = 4096


def _data():
    from cifar10_pipeline.training.datasets import TrainingData
    from cifar10_pipeline.training.datasets.base import make_dataset

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (TRAIN_IMAGES + 1024, *SHAPE), dtype=np.uint8)
    labels = rng.integers(0, 10, TRAIN_IMAGES + 1024)
    return TrainingData.on_test(make_dataset("synthetic", images[:TRAIN_IMAGES], labels[:TRAIN_IMAGES],
                                             images[TRAIN_IMAGES:], labels[TRAIN_IMAGES:],
                                             tuple(str(i) for i in range(10))))


def _config(**values: Any):
    from cifar10_pipeline.training.config import TrainConfig

    return TrainConfig.from_dict({"dataset": "synthetic", "batch_size": BATCH, **values})


def time_steps(trainer, steps: int) -> float:
    """Median milliseconds of one training step, after two warm-up steps (lazy initialisation, compilation)."""
    order = np.random.default_rng(0).permutation(TRAIN_IMAGES)
    trainer.begin_epoch(0)
    times = []
    for i in range(steps + 2):
        t0 = time.perf_counter()
        loss, _ = trainer.step(order[(i * BATCH) % TRAIN_IMAGES:][:BATCH], 0.05)
        float(loss)  # wait for the device
        times.append(time.perf_counter() - t0)
    return 1000 * float(np.median(times[2:]))


def step_rows(framework: str, make, settings: dict[str, dict], steps: int) -> list[dict]:
    """One row per setting: the median step of the adapter ``make(config, data)`` builds from those config values."""
    data = _data()
    return [{"choice": f"{framework} training step", "setting": name, "unit": "ms per step",
             "ms": time_steps(make(_config(**values), data), steps)} for name, values in settings.items()]


def torch_rows(steps: int) -> list[dict]:
    import torch

    from cifar10_pipeline.training import torch_trainer
    from cifar10_pipeline.training.torch_trainer import TorchTrainer

    def contiguous(config, data) -> TorchTrainer:
        trainer = TorchTrainer(config, data)
        trainer.model.body.to(memory_format=torch.contiguous_format)
        return trainer

    rows = step_rows("PyTorch", TorchTrainer, {f"precision {p}, channels_last": {"precision": p}
                                               for p in ("float32", "bfloat16")}, steps)
    with mock.patch.object(torch_trainer, "to_layout", lambda x: x.contiguous()):
        rows += step_rows("PyTorch", contiguous, {"precision float32, contiguous (NCHW)": {"precision": "float32"}},
                          steps)
    data = _data()
    trainer = TorchTrainer(_config(), data)
    for batch in (256, 1024):
        with mock.patch.object(torch_trainer, "EVAL_BATCH", batch):
            trainer.predict(data.eval_images)
            t0 = time.perf_counter()
            trainer.predict(data.eval_images)
            rows.append({"choice": "PyTorch evaluation", "setting": f"{batch} images per call",
                         "unit": "ms per 1,000 images",
                         "ms": 1e6 * (time.perf_counter() - t0) / len(data.eval_images)})
    return rows


def tensorflow_rows(steps: int) -> list[dict]:
    from cifar10_pipeline.training.keras_trainer import KerasTrainer, make_train_step

    def xla(config, data) -> KerasTrainer:
        trainer = KerasTrainer(config, data)  # XLA-compiled on GPUs only: compile its step here on the CPU too
        trainer._step = make_train_step(trainer.model, trainer.optimizer, config, jit=True)
        return trainer

    rows = step_rows("TensorFlow", KerasTrainer, {f"precision {p}, no XLA": {"precision": p}
                                                  for p in ("float32", "bfloat16")}, steps)
    return rows + step_rows("TensorFlow", xla, {"precision float32, XLA": {"precision": "float32"}}, steps)


def onnxruntime_rows(calls: int) -> list[dict]:
    import onnxruntime as ort
    import torch

    from cifar10_pipeline.export import torch_converter
    from cifar10_pipeline.inference.runtime import session_options
    from cifar10_pipeline.model.torch_net import build_model

    config = _config()
    torch.manual_seed(0)
    model = build_model(config.model_spec((32, 32, 3), 10, (128.0,) * 3, (64.0,) * 3)).eval()
    image = np.random.default_rng(0).integers(0, 256, (1, 32, 32, 3), dtype=np.uint8)

    def per_call(session, clock: Callable[[], float]) -> float:
        for _ in range(20):
            session.run(None, {"image": image})
        t0 = clock()
        for _ in range(calls):
            session.run(None, {"image": image})
        return 1000 * (clock() - t0) / calls

    rows = []
    proto = torch_converter.to_onnx(model).SerializeToString()
    for threads in (1, 2):
        session = ort.InferenceSession(proto, session_options(threads), providers=["CPUExecutionProvider"])
        rows.append({"choice": "onnxruntime batch-1 call", "setting": f"{threads} intra-op thread(s)",
                     "ms": per_call(session, time.process_time), "unit": "CPU ms per call (all threads)"})
    return rows


def markdown(report: dict) -> str:
    lines = [f"# Speed choices ({report['machine']}{', smoke counts' if report['smoke'] else ''})", "",
             "Each default the code takes for speed, timed both ways; the median of "
             f"{report['steps']} training steps at batch {BATCH}, width 32, {'x'.join(map(str, SHAPE))} images.", "",
             "| what | setting | time | unit |", "| --- | --- | ---: | --- |"]
    for row in report["rows"]:
        lines.append(f"| {row['choice']} | {row['setting']} | {row['ms']:.2f} | {row['unit']} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.choices", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("bench-results"), help="directory for choices.json/.md")
    parser.add_argument("--smoke", action="store_true", help="a few steps and calls: a check that it runs")
    parser.add_argument("--tensorflow-rows", action="store_true", help=argparse.SUPPRESS)  # the TF half, as JSON
    args = parser.parse_args(argv)
    steps, calls = (2, 20) if args.smoke else (20, 2000)
    if args.tensorflow_rows:
        print(json.dumps(tensorflow_rows(steps)))
        return 0
    tf_python = frameworks.get("tensorflow").python()
    tf = subprocess.run([tf_python, "-m", "benchmarks.choices", "--tensorflow-rows", *(["--smoke"] * args.smoke)],
                        cwd=REPO, capture_output=True, text=True)
    if tf.returncode != 0:
        raise RuntimeError(f"the TensorFlow half failed ({tf_python}):\n{tf.stderr[-3000:]}")
    rows = torch_rows(steps) + json.loads(tf.stdout.strip().splitlines()[-1]) + onnxruntime_rows(calls)
    report = {"machine": machine(), "smoke": args.smoke, "steps": steps,
              "rows": rows}
    write_report(args.out, "choices", report, markdown(report), record=not args.smoke)
    return 0


if __name__ == "__main__":
    sys.exit(main())
