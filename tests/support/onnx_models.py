"""Tiny contract-compliant ONNX models built with onnx.helper, for tests that need a model in milliseconds.

The graph: mean pixel value per channel (scaled to [0, 1]) -> linear layer -> logits. Different colours
therefore land in different classes, and ``reference_logits`` computes the same thing in numpy. The pixel echo
(``build_pixel_echo``) answers the input pixels themselves, so a test reads back what the service decoded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from cifar10_pipeline.contract import (
    GOLDEN_BATCH,
    INPUT_NAME,
    OUTPUT_NAME,
    encode_metadata,
    golden_input,
)
from cifar10_pipeline.training.datasets.cifar10 import CIFAR10_CLASSES

CIFAR10_LABELS = list(CIFAR10_CLASSES)
OPSET = 18
IR_VERSION = 8  # the oldest IR that opset 18 allows, so any onnxruntime >= 1.14 reads these files


def weights(seed: int, channels: int, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """The linear layer of ``seed``: W [channels, num_classes] and b [num_classes], float32."""
    rng = np.random.default_rng(seed)
    return (
        rng.normal(0, 4, (channels, num_classes)).astype(np.float32),
        rng.normal(0, 1, num_classes).astype(np.float32),
    )


def reference_logits(images: np.ndarray, seed: int, num_classes: int = 10) -> np.ndarray:
    """What the model of ``seed`` answers for uint8 ``images`` [batch, H, W, C], computed in numpy."""
    w, b = weights(seed, images.shape[-1], num_classes)
    return (images.astype(np.float32).mean(axis=(1, 2)) / 255.0) @ w + b


def build_model(
    *,
    seed: int = 0,
    height: int = 32,
    width: int = 32,
    channels: int = 3,
    labels: list[str] = CIFAR10_LABELS,
    framework: str = "torch",
    golden: dict[str, Any] | None = None,
    input_name: str = INPUT_NAME,
) -> onnx.ModelProto:
    """A model meeting the contract. ``golden`` overrides the parity report's golden entry (None: the
    correct one; ``{}``: none at all); ``input_name`` other than the contract's breaks the contract."""
    w, b = weights(seed, channels, len(labels))
    nodes = [
        helper.make_node("Cast", [input_name], ["as_float"], to=TensorProto.FLOAT),
        helper.make_node("ReduceMean", ["as_float", "hw_axes"], ["mean"], keepdims=0),  # [batch, C]
        helper.make_node("Div", ["mean", "max_pixel"], ["scaled"]),
        helper.make_node("MatMul", ["scaled", "W"], ["linear"]),
        helper.make_node("Add", ["linear", "b"], [OUTPUT_NAME]),
    ]
    initializers = [
        numpy_helper.from_array(np.array([1, 2], dtype=np.int64), "hw_axes"),
        numpy_helper.from_array(np.array(255.0, dtype=np.float32), "max_pixel"),
        numpy_helper.from_array(w, "W"),
        numpy_helper.from_array(b, "b"),
    ]
    graph = helper.make_graph(
        nodes,
        f"mean_colour_linear_seed{seed}",
        [helper.make_tensor_value_info(input_name, TensorProto.UINT8, ["batch", height, width, channels])],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["batch", len(labels)])],
        initializers,
    )
    return _with_contract_metadata(graph, lambda x: reference_logits(x, seed, len(labels)), labels=labels,
                                   shape=(height, width, channels), framework=framework, golden=golden,
                                   train_config={"seed": seed})


# the pixel echo's logit scale: softmax probabilities p_i = exp(ECHO_SCALE * pixel_i) / Z stay well inside float32
# for pixels 0..255 and hundreds of classes, and pixel_i = ln(p_i / p_anchor) / ECHO_SCALE comes back exactly
ECHO_SCALE = 1 / 64


def build_pixel_echo(height: int, width: int, channels: int) -> onnx.ModelProto:
    """A model whose logits are the input pixels: class 0 (``anchor``) has logit 0, class 1 + i the i-th pixel of
    the ``[H, W, C]`` input (row-major) times ``ECHO_SCALE``. ``echoed_pixels`` reads them back from /predict."""
    labels = ["anchor", *(f"pixel {i}" for i in range(height * width * channels))]
    nodes = [
        helper.make_node("Cast", [INPUT_NAME], ["as_float"], to=TensorProto.FLOAT),
        helper.make_node("Reshape", ["as_float", "flat_shape"], ["flat"]),  # [batch, H * W * C]
        helper.make_node("Mul", ["flat", "scale"], ["scaled"]),
        helper.make_node("Pad", ["scaled", "anchor_pad"], [OUTPUT_NAME]),  # a column of zeros in front
    ]
    initializers = [
        numpy_helper.from_array(np.array([0, -1], dtype=np.int64), "flat_shape"),  # 0: keep the batch dimension
        numpy_helper.from_array(np.array(ECHO_SCALE, dtype=np.float32), "scale"),
        numpy_helper.from_array(np.array([0, 1, 0, 0], dtype=np.int64), "anchor_pad"),  # axis 1: one before
    ]
    graph = helper.make_graph(
        nodes,
        "pixel_echo",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.UINT8, ["batch", height, width, channels])],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["batch", len(labels)])],
        initializers,
    )

    def reference(x: np.ndarray) -> np.ndarray:
        flat = x.reshape(len(x), -1).astype(np.float32) * np.float32(ECHO_SCALE)
        return np.concatenate([np.zeros((len(x), 1), np.float32), flat], axis=1)

    return _with_contract_metadata(graph, reference, labels=labels, shape=(height, width, channels))


def echoed_pixels(prediction: dict, shape: tuple[int, int, int]) -> np.ndarray:
    """The uint8 ``[H, W, C]`` input a pixel echo model saw, from one /predict prediction listing every class
    (``top_k`` = number of pixels + 1)."""
    p = {entry["label"]: entry["probability"] for entry in prediction["top_k"]}
    values = np.log([p[f"pixel {i}"] / p["anchor"] for i in range(int(np.prod(shape)))]) / ECHO_SCALE
    assert np.abs(values - np.rint(values)).max() < 0.05, "the probabilities do not come from whole pixel values"
    return np.rint(values).astype(np.uint8).reshape(shape)


def _with_contract_metadata(graph: onnx.GraphProto, reference, *, labels: list[str], shape: tuple[int, int, int],
                            framework: str = "torch", golden: dict[str, Any] | None = None,
                            train_config: dict[str, Any] | None = None) -> onnx.ModelProto:
    """``graph`` as a checked model with the contract's metadata; the golden entry holds ``reference`` (numpy
    logits of a uint8 batch) on the golden input, unless ``golden`` overrides it (``{}``: none at all)."""
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION)
    height, width, channels = shape
    if golden is None:
        x = golden_input(GOLDEN_BATCH, height, width, channels, seed=0)
        golden = {"seed": 0, "batch": GOLDEN_BATCH, "logits": reference(x).tolist(), "atol": 1e-4}
    parity = {"max_abs_diff": 0.0, "golden": golden} if golden else {"max_abs_diff": 0.0}
    metadata = encode_metadata(
        {
            "labels": labels,
            "dataset": "synthetic",
            "framework": framework,
            "framework_version": "0",
            "input_height": height,
            "input_width": width,
            "input_channels": channels,
            "test_accuracy": 0.1,
            "train_config": train_config or {},
            "parity": parity,
            "created": "2026-01-01T00:00:00+00:00",
            "project_version": "0.1.0",
        }
    )
    helper.set_model_props(model, metadata)
    onnx.checker.check_model(model, full_check=True)
    return model


def write_model(path: Path, model: onnx.ModelProto | None = None, **kwargs: Any) -> Path:
    """Write ``model`` (default: ``build_model(**kwargs)``) to ``path``, atomically (a rename)."""
    tmp = path.with_name(path.name + ".tmp")
    onnx.save(model if model is not None else build_model(**kwargs), tmp)
    tmp.replace(path)
    return path


def write_quantized_model(path: Path, *, seed: int = 0, **kwargs: Any) -> Path:
    """The model of ``seed`` (see ``build_model``) quantized by the export's INT8 recipe and stamped the same
    way, written to ``path``: calibrated and gated on images of random colours, labelled by the float model."""
    from cifar10_pipeline.export.pipeline import quantize_and_stamp  # onnxruntime's quantizer: only for the tests that need it

    model = build_model(seed=seed, **kwargs)
    height, width, channels = (kwargs.get(k, d) for k, d in (("height", 32), ("width", 32), ("channels", 3)))
    rng = np.random.default_rng(seed)
    colours = rng.integers(0, 256, (512, 1, 1, channels))
    noise = rng.integers(-8, 9, (512, height, width, channels))
    images = np.clip(colours + noise, 0, 255).astype(np.uint8)
    labels = reference_logits(images, seed, len(kwargs.get("labels", CIFAR10_LABELS))).argmax(1)
    # a loose gate: random colours land near class boundaries, where INT8 rounding flips a few of them (the
    # gate itself is tested on trained models in tests/export)
    quantized, _ = quantize_and_stamp(model, calibration_images=images[:256], images=images, image_labels=labels,
                                      max_accuracy_drop=5.0, log=lambda _: None)
    tmp = path.with_name(path.name + ".tmp")
    onnx.save(quantized, tmp)
    tmp.replace(path)
    return path


if __name__ == "__main__":  # PYTHONPATH=. python tests/onnx_models.py OUT.onnx [SEED]: a model to try things with
    import sys

    print(write_model(Path(sys.argv[1]), seed=int(sys.argv[2]) if len(sys.argv) > 2 else 0))
