"""What a framework's converter gives the export pipeline, and what both converters share.

A converter (``torch_converter``, ``keras_converter``; the registry, ``model.frameworks``, names them) imports
its framework and the model's network module, never the trainers: ``convert(model)`` takes a trained network
(loaded from the run by the pipeline) and returns a ``Conversion``, the network as a parity runner beside its
ONNX graph. Every engine the gates compare is a ``Runner``: numpy in, numpy out.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol

import numpy as np
import onnx

# the ONNX opset both converters write, so files of both frameworks are alike (at least contract.MIN_OPSET)
OPSET = 18


class Runner(Protocol):
    """An engine: ``name`` (engine, version, device) for the reports; ``infer`` maps the contract's input
    (uint8 [N, H, W, C]) to its outputs (float32 logits [N, classes])."""

    name: str

    def infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...


class Conversion(NamedTuple):
    runner: Runner  # the framework's network in inference mode: the reference parity holds onnxruntime to
    model: onnx.ModelProto  # its ONNX graph, not yet stamped with the contract's metadata
    framework_version: str
