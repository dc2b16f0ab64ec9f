"""Edits of ONNX graphs that make plausible-looking but wrong files."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from cifar10_pipeline.contract import OUTPUT_NAME


def _logits_renamed(model: onnx.ModelProto, name: str) -> onnx.ModelProto:
    """A copy whose node making the logits writes them to ``name``: new nodes then make the output."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    last = next(node for node in model.graph.node if OUTPUT_NAME in node.output)
    last.output[:] = [name]
    return model


def after_logits(model: onnx.ModelProto, op: str, operand: np.ndarray) -> onnx.ModelProto:
    """The same graph with one more node: logits = ``op``(the graph's own logits, ``operand``), whatever the
    converter's node and initializer names are. ``operand`` keeps its dtype (float32 for the logits)."""
    model = _logits_renamed(model, "unedited_logits")
    model.graph.initializer.append(numpy_helper.from_array(np.asarray(operand), "edit_operand"))
    model.graph.node.append(helper.make_node(op, ["unedited_logits", "edit_operand"], [OUTPUT_NAME]))
    return model


def dropped_class(model: onnx.ModelProto, index: int, classes: int = 10) -> onnx.ModelProto:
    """The graph with the logit of class ``index`` left out at run time: the columns are gathered by NonZero's
    indices, whose count no shape inference knows, so the output is declared and inferred [batch, classes?]."""
    model = _logits_renamed(model, "all_logits")
    model.graph.initializer.extend([numpy_helper.from_array(np.arange(classes) != index, "kept_mask"),
                                    numpy_helper.from_array(np.array([0]), "zero_axis")])
    model.graph.node.extend([
        helper.make_node("NonZero", ["kept_mask"], ["kept_2d"]),  # int64 [1, classes - 1]
        helper.make_node("Squeeze", ["kept_2d", "zero_axis"], ["kept_columns"]),
        helper.make_node("Gather", ["all_logits", "kept_columns"], [OUTPUT_NAME], axis=1),
    ])
    model.graph.output[0].type.tensor_type.shape.dim[1].dim_param = "classes"
    return model


def tampered(model: onnx.ModelProto) -> onnx.ModelProto:
    """The same graph with 5 added to one logit: a plausible-looking but wrong file."""
    return after_logits(model, "Add", 5 * np.eye(10, dtype=np.float32)[3])
