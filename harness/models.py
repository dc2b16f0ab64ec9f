"""The project's CNN as the default config builds it for CIFAR-10, with seeded random weights (speed and
robustness do not depend on them), saved as the PyTorch trainer saves a model and exported as the export command
exports a run: the model the serving benchmarks and the reliability scenarios serve."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cifar10_pipeline.training.datasets.cifar10 import CIFAR10_CLASSES

CIFAR10_MEAN, CIFAR10_STD = (125.3, 123.0, 113.9), (63.0, 62.1, 66.7)  # pixel units


def make_models(workdir: Path, seed: int = 0) -> tuple[Path, Path]:
    """The CNN with random weights of ``seed``, saved to ``workdir`` as a trainer saves it and exported as the
    export command exports it (dynamo exporter, parity, metadata with golden logits): (torch model file, ONNX
    file)."""
    import torch

    from cifar10_pipeline.export.pipeline import prove_and_stamp
    from cifar10_pipeline.export.torch_converter import TorchRunner, to_onnx
    from cifar10_pipeline.export.writer import write_model
    from cifar10_pipeline.model.torch_net import build_model, save_model_file
    from cifar10_pipeline.training.config import TrainConfig

    torch.manual_seed(seed)
    config = TrainConfig()  # the network the default config trains on CIFAR-10
    model = build_model(config.model_spec((32, 32, 3), len(CIFAR10_CLASSES), CIFAR10_MEAN, CIFAR10_STD)).eval()
    checkpoint = workdir / "model.pt"
    save_model_file(model, checkpoint)

    onnx_model = to_onnx(model)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (64, 32, 32, 3), dtype=np.uint8)
    report = prove_and_stamp(
        TorchRunner(model), onnx_model, framework="torch", framework_version=torch.__version__, dataset="synthetic",
        labels=list(CIFAR10_CLASSES), train_config={**config.to_dict(), "benchmark": "random weights"},
        images=images, image_labels=rng.integers(0, len(CIFAR10_CLASSES), 64), log=lambda _: None)
    path = workdir / "model.onnx"
    write_model(onnx_model, path, report)
    return checkpoint, path
