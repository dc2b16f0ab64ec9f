"""Edits of exported ONNX graphs that make plausible-looking but wrong files."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper


def tampered(model: onnx.ModelProto) -> onnx.ModelProto:
    """The same graph with 5 added to one logit: a plausible-looking but wrong file, whatever the converter's
    node and initializer names are."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    last = next(node for node in model.graph.node if "logits" in node.output)
    last.output[:] = ["untampered_logits"]
    model.graph.initializer.append(numpy_helper.from_array(5 * np.eye(10, dtype=np.float32)[3], "tamper"))
    model.graph.node.append(helper.make_node("Add", ["untampered_logits", "tamper"], ["logits"]))
    return model
