"""The framework's converter (``export.torch_converter``, ``export.keras_converter``): onnxruntime runs the graph
it writes like the framework runs the network, TTA included (mirror and shifts), and folds every BatchNorm away."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from cifar10_pipeline.export.converter import OPSET
from cifar10_pipeline.export.gates import OrtRunner
from cifar10_pipeline.model.spec import ModelSpec
from cifar10_pipeline.training.datasets import load_dataset


def test_onnxruntime_answers_like_the_framework_on_real_images_and_any_batch_size(exported, converted):
    runner = converted.runner
    session = ort.InferenceSession(str(exported), providers=["CPUExecutionProvider"])
    images = load_dataset("synthetic").test_images[:300]
    for batch in (1, 7, 300):
        got = session.run(["logits"], {"image": images[:batch]})[0]
        want = runner.infer({"image": images[:batch]})["logits"]
        assert got.dtype == np.float32 and got.shape == (batch, 10)
        np.testing.assert_allclose(got, want, atol=1e-4)


def test_exported_graph_averages_each_image_with_its_mirror(exported, trained):
    # the tiny config trains with flips and bakes flip TTA into the graph: mirrored images, same logits
    assert trained.run.config.flip and trained.run.config.tta
    session = ort.InferenceSession(str(exported), providers=["CPUExecutionProvider"])
    images = load_dataset("synthetic").test_images[:64]
    logits, mirrored = (session.run(["logits"], {"image": x})[0] for x in (images, images[:, :, ::-1].copy()))
    np.testing.assert_allclose(mirrored, logits, atol=1e-5)
    assert np.abs(logits).max() > 0.1  # not trivially equal


@pytest.mark.parametrize("axes", [False, True])
def test_shift_tta_survives_the_conversion(framework, exporter, axes):
    # the tiny run's TTA is the mirror only (its INT8 twin must pass the shared gate tests); the shifted views are
    # proven here on an untrained network of the same code
    spec = ModelSpec((16, 16, 3), 10, (120.0, 110.0, 100.0), (60.0, 50.0, 40.0), width=8, dropout=0.0, tta=True,
                     tta_shift=1, tta_shift_axes=axes)
    model = framework.load("network").build_model(spec)
    # kernels drawn from N(0, 0.5^2): at their initial scale the untrained network's logits are ~1e-3
    rng = np.random.default_rng(0)
    if framework.name == "torch":
        for parameter in model.parameters():
            if parameter.ndim > 1:
                parameter.data.normal_(0.0, 0.5)
    else:
        model.set_weights([rng.normal(0.0, 0.5, w.shape).astype(np.float32) if w.ndim > 1 else w
                           for w in model.get_weights()])
    conversion = exporter.convert(model)
    gathers = [n for n in conversion.model.graph.node if n.op_type == "Gather"]
    assert len(gathers) >= 2  # a constant gather per axis moves the image (model.spec.shifted_index)
    images = np.random.default_rng(0).integers(0, 256, (37, 16, 16, 3), dtype=np.uint8)
    got = OrtRunner(conversion.model.SerializeToString()).infer({"image": images})["logits"]
    want = conversion.runner.infer({"image": images})["logits"]
    assert np.abs(want).max() > 0.05  # not trivially equal
    # float32 sums of terms as large as the largest logit: closeness relative to it
    np.testing.assert_allclose(got, want, atol=1e-5 * np.abs(want).max(), rtol=0)


def test_onnxruntime_folds_every_batchnorm_into_its_conv(exported, tmp_path):
    # the exported graph pools after BatchNorm + ReLU (model.torch_net.ConvPool), so onnxruntime folds every
    # BatchNorm into the conv before it and fuses the ReLU: no BatchNormalization is left to run when serving
    options = ort.SessionOptions()
    options.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    ort.InferenceSession(str(exported), options, providers=["CPUExecutionProvider"])
    exported_ops = [node.op_type for node in onnx.load(str(exported)).graph.node]
    optimized_ops = [node.op_type for node in onnx.load(options.optimized_model_filepath).graph.node]
    convs = exported_ops.count("Conv")
    assert convs in (7, 14)  # the network's 7, twice where flip TTA runs the body once more (TensorFlow's graph)
    assert "BatchNormalization" not in optimized_ops and "Relu" not in optimized_ops
    assert optimized_ops.count("FusedConv") + optimized_ops.count("Conv") == convs


def test_both_converters_write_the_opset_of_the_export(exported):
    # one OPSET for both frameworks: their files are alike
    model = onnx.load(str(exported))
    assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) == OPSET
