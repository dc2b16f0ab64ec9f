"""The file the export writes meets the contract, carries its metadata and agrees with the framework."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort

from cifar10_pipeline.contract import METADATA_KEYS, golden_input
from cifar10_pipeline.training.datasets import load_dataset
from tests.support.contract import check_contract


def test_exported_file_meets_the_contract_and_carries_its_metadata(exported, trained, framework):
    info = check_contract(exported)
    assert info.labels == tuple(trained.run.info["classes"]) and info.num_classes == 10
    assert info.input_shape == (32, 32, 3)
    meta = info.metadata
    assert set(meta) == set(METADATA_KEYS)
    assert meta["framework"] == framework.name and meta["dataset"] == "synthetic"
    assert meta["framework_version"] == trained.run.info["framework_version"]
    assert meta["train_config"] == trained.run.config.to_dict()
    assert meta["parity"]["passed"] and meta["parity"]["max_abs_diff"] <= 1e-4
    assert meta["parity"]["cases"][0]["samples"] == 2000  # every test image by default
    assert meta["test_accuracy"] == meta["parity"]["test_accuracy"] > 0.5
    model = onnx.load(str(exported))
    assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= 17
    beside = json.loads(exported.with_name("model.parity.json").read_text())
    assert beside == meta["parity"]


def test_onnxruntime_answers_like_the_framework_on_real_images_and_any_batch_size(exported, trained, exporter):
    runner, _, _ = exporter.convert(trained.run)
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


def test_golden_logits_in_the_report_reproduce_with_onnxruntime(exported):
    info = check_contract(exported)
    golden = info.metadata["parity"]["golden"]
    session = ort.InferenceSession(str(exported), providers=["CPUExecutionProvider"])
    got = session.run(["logits"], {"image": golden_input(golden["batch"], 32, 32, 3, seed=golden["seed"])})[0]
    np.testing.assert_allclose(got, np.array(golden["logits"]), atol=1e-4)


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
