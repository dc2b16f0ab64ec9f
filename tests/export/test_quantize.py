"""The INT8 recipe (``export.quantize``): INT8 weights and a float stem, a calibration set fixed by the seed, and
the twin's file name."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx

from cifar10_pipeline.export.quantize import calibration_sample, quantized_path


def test_the_int8_graph_has_int8_weights_and_a_float_stem(made):
    graph = onnx.load(str(made.with_name("model.int8.onnx"))).graph
    int8_weights = [i for i in graph.initializer if i.data_type == onnx.TensorProto.INT8]
    assert len(int8_weights) >= 7  # the convolutions after the first and the classifier
    producers = {out: node.op_type for node in graph.node for out in node.output}
    convs = [node for node in graph.node if node.op_type == "Conv"]
    float_fed = [node for node in convs if producers.get(node.input[0]) != "DequantizeLinear"]
    # the stem: the first convolution reads the float image (once, or once per TTA branch: the TensorFlow export
    # runs the body on the image and on its mirror); every later one reads quantized activations
    assert 1 <= len(float_fed) <= 2 and len(convs) - len(float_fed) >= 6
    assert all(producers.get(node.input[0]) in {"Mul", "Transpose", "Concat"} for node in float_fed)


def test_the_calibration_set_is_drawn_by_the_seed_in_order_without_repeats():
    images = np.arange(1000).reshape(1000, 1, 1, 1)
    sample = calibration_sample(images, 512, seed=0)
    drawn = sample.ravel()
    assert len(drawn) == 512 == len(set(drawn)) and (np.diff(drawn) > 0).all()
    np.testing.assert_array_equal(calibration_sample(images, 512, seed=0), sample)
    assert not np.array_equal(calibration_sample(images, 512, seed=1), sample)
    np.testing.assert_array_equal(calibration_sample(images[:100], 512, seed=0).ravel(), np.arange(100))


def test_the_quantized_file_sits_beside_the_float_one():
    assert quantized_path(Path("models/model.onnx")) == Path("models/model.int8.onnx")
    assert quantized_path(Path("out/cnn.onnx"), "int8") == Path("out/cnn.int8.onnx")
