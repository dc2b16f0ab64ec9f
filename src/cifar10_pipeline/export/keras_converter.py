"""TensorFlow converter: a trained Keras network as a parity runner, and its conversion to ONNX (tf2onnx).

tf2onnx's Keras entry point (``from_keras``) relies on Keras 2 attributes (``output_names``, ``_get_save_spec``)
that Keras 3 dropped, so the model is wrapped in a ``tf.function`` with an explicit uint8 input signature and
converted with ``from_function``.
"""

from __future__ import annotations

import keras
import numpy as np
import onnx
import tensorflow as tf
import tf2onnx

from cifar10_pipeline.contract import INPUT_NAME, OUTPUT_NAME, ContractError
from cifar10_pipeline.export.converter import OPSET, Conversion
from cifar10_pipeline.model.keras_net import pooling_last

BATCH_DIM = "batch"  # the symbolic batch axis, named as the PyTorch export names it


class KerasRunner:
    """The Keras model in inference mode (BatchNorm running statistics, no dropout) on the CPU."""

    def __init__(self, model: keras.Model):
        self.name = f"tensorflow {tf.__version__} / keras {keras.__version__} (eager, CPU)"
        self.model = model

    def infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        with tf.device("/CPU:0"):
            return {OUTPUT_NAME: self.model(feeds[INPUT_NAME], training=False).numpy()}


def _rename_value(graph: onnx.GraphProto, old: str, new: str) -> None:
    """Rename a graph input or output, and every node reference to it."""
    for node in graph.node:
        node.input[:] = [new if name == old else name for name in node.input]
        node.output[:] = [new if name == old else name for name in node.output]
    for value in (*graph.input, *graph.output):
        if value.name == old:
            value.name = new


def _apply_contract_names(model: onnx.ModelProto) -> onnx.ModelProto:
    """Name the single input ``image`` and output ``logits`` (tf2onnx may add ``:0``) and the batch axis ``batch``."""
    graph = model.graph
    # tf2onnx lists initializers among the inputs in some versions: the real input is the one with no initializer
    initializers = {i.name for i in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initializers]
    if len(inputs) != 1 or len(graph.output) != 1:
        raise ContractError("tf2onnx's graph", [f"inputs are {[i.name for i in inputs]} and outputs "
                                                f"{[o.name for o in graph.output]}; expected one of each"])
    for value, name in ((inputs[0], INPUT_NAME), (graph.output[0], OUTPUT_NAME)):
        if value.name != name:
            _rename_value(graph, value.name, name)
        value.type.tensor_type.shape.dim[0].dim_param = BATCH_DIM
    return model


def to_onnx(model: keras.Model) -> onnx.ModelProto:
    """uint8 [batch, H, W, C] -> logits, with a dynamic batch axis."""
    _, h, w, c = model.input_shape
    signature = [tf.TensorSpec([None, h, w, c], tf.uint8, name=INPUT_NAME)]

    @tf.function(input_signature=signature)
    def serve(image: tf.Tensor) -> dict[str, tf.Tensor]:
        return {OUTPUT_NAME: model(image, training=False)}

    with tf.device("/CPU:0"), pooling_last(model):
        proto, _ = tf2onnx.convert.from_function(serve, input_signature=signature, opset=OPSET)
    return _apply_contract_names(proto)


def convert(model: keras.Model) -> Conversion:
    """The trained ``model`` as a parity runner, its ONNX graph and TensorFlow's version."""
    return Conversion(KerasRunner(model), to_onnx(model), tf.__version__)
