"""PyTorch converter: a trained network as a parity runner, and its conversion to ONNX (dynamo exporter)."""

from __future__ import annotations

import contextlib
import io
import logging
import warnings

import numpy as np
import onnx
import torch

from cifar10_pipeline.contract import INPUT_NAME, OUTPUT_NAME
from cifar10_pipeline.export.converter import OPSET, Conversion
from cifar10_pipeline.model.torch_net import Net, pooling_last


class TorchRunner:
    def __init__(self, model: Net):
        self.name = f"torch {torch.__version__} (eager, CPU)"
        self.model = model.eval()

    @torch.no_grad()
    def infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {OUTPUT_NAME: self.model(torch.from_numpy(feeds[INPUT_NAME])).numpy()}


def to_onnx(model: Net) -> onnx.ModelProto:
    """uint8 [batch, H, W, C] -> logits, with a dynamic batch axis."""
    example = torch.zeros(2, *model.spec.image_shape, dtype=torch.uint8)
    # the dynamo exporter narrates every stage on stdout and warns about torchvision ops this model does not
    # use; keep the export's own output readable
    logging.getLogger("torch.onnx._internal.exporter._registration").setLevel(logging.ERROR)
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings(), pooling_last(model):
        warnings.simplefilter("ignore", FutureWarning)
        program = torch.onnx.export(
            model, (example,), input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
            dynamic_shapes={"image": {0: torch.export.Dim("batch")}}, opset_version=OPSET, dynamo=True,
        )
    return program.model_proto


def convert(model: Net) -> Conversion:
    """The trained ``model`` as a parity runner, its ONNX graph and PyTorch's version."""
    return Conversion(TorchRunner(model), to_onnx(model), torch.__version__)
