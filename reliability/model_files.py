"""Model files for the swaps scenario, made from one exported model: good variants (other logits, each with its
own golden entry, so each is a model the service must accept and can be told apart by its answers) and broken
files of every kind a model replacement can go wrong in."""

from __future__ import annotations

import json
import random
from collections.abc import Callable

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper, numpy_helper

from cifar10_pipeline.contract import INPUT_NAME, OUTPUT_NAME, golden_input

Corrupt = Callable[[bytes, random.Random], bytes]  # a good file's bytes -> a broken file's bytes


def _metadata(model: onnx.ModelProto) -> dict[str, str]:
    return {p.key: p.value for p in model.metadata_props}


def _set_metadata(model: onnx.ModelProto, key: str, value: str) -> None:
    next(p for p in model.metadata_props if p.key == key).value = value


def _offset_logits(model: onnx.ModelProto, offset: np.ndarray) -> onnx.ModelProto:
    """A copy of ``model`` whose logits are its own plus ``offset`` [num_classes] (an Add after the last node)."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    n = len(model.graph.node)  # unique names, so that an offset model can be offset again
    before, added = f"{OUTPUT_NAME}_before_offset_{n}", f"stress_offset_{n}"
    last = next(node for node in model.graph.node if OUTPUT_NAME in node.output)
    last.output[:] = [before if o == OUTPUT_NAME else o for o in last.output]
    model.graph.initializer.append(numpy_helper.from_array(offset.astype(np.float32), added))
    model.graph.node.append(helper.make_node("Add", [before, added], [OUTPUT_NAME]))
    return model


def _restamp_golden(model: onnx.ModelProto) -> onnx.ModelProto:
    """Recompute the parity report's golden logits with onnxruntime, so the self-test accepts the edited graph."""
    parity = json.loads(_metadata(model)["parity"])
    golden = parity["golden"]
    meta = _metadata(model)
    images = golden_input(golden["batch"], int(meta["input_height"]), int(meta["input_width"]),
                          int(meta["input_channels"]), golden["seed"])
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    golden["logits"] = session.run([OUTPUT_NAME], {INPUT_NAME: images})[0].tolist()
    _set_metadata(model, "parity", json.dumps(parity))
    return model


def good_variant(base: bytes, index: int) -> bytes:
    """Good model number ``index``: ``base`` with seeded offsets (sd 1) added to its logits, golden entry remade."""
    model = onnx.load_from_string(base)
    classes = len(json.loads(_metadata(model)["labels"]))
    offset = np.random.default_rng(1000 + index).normal(0, 1, classes)
    return _restamp_golden(_offset_logits(model, offset)).SerializeToString()


def _renamed_input(good: bytes, _: random.Random) -> bytes:
    model = onnx.load_from_string(good)
    for value in model.graph.input:
        if value.name == INPUT_NAME:
            value.name = "pixels"
    for node in model.graph.node:
        node.input[:] = ["pixels" if name == INPUT_NAME else name for name in node.input]
    return model.SerializeToString()


def _labels_mismatch(good: bytes, _: random.Random) -> bytes:
    model = onnx.load_from_string(good)
    labels = json.loads(_metadata(model)["labels"])
    _set_metadata(model, "labels", json.dumps(labels[:-1]))
    return model.SerializeToString()


def _wrong_golden(good: bytes, _: random.Random) -> bytes:
    model = onnx.load_from_string(good)
    parity = json.loads(_metadata(model)["parity"])
    parity["golden"]["logits"] = (np.asarray(parity["golden"]["logits"]) + 1.0).tolist()
    _set_metadata(model, "parity", json.dumps(parity))
    return model.SerializeToString()


def _nan_logits(good: bytes, _: random.Random) -> bytes:
    model = onnx.load_from_string(good)
    classes = len(json.loads(_metadata(model)["labels"]))
    return _offset_logits(model, np.full(classes, np.nan)).SerializeToString()


def _no_metadata(good: bytes, _: random.Random) -> bytes:
    model = onnx.load_from_string(good)
    del model.metadata_props[:]
    return model.SerializeToString()


# kind -> how the broken bytes are made from a good file; "half written" is written in two steps by the scenario
CORRUPT: dict[str, Corrupt] = {
    "truncated (first 60% of a good file)": lambda good, _: good[: len(good) * 3 // 5],
    "half written (first half in place; the second half follows once refused)": lambda good, _: good[: len(good) // 2],
    "random bytes (a model's size)": lambda good, rng: rng.randbytes(len(good)),
    "empty file": lambda good, _: b"",
    "JSON text, not ONNX": lambda good, _: b'{"model": "not really"}\n',
    "valid ONNX, input renamed (breaks the contract)": _renamed_input,
    "valid ONNX, labels one short of its logits (breaks the contract)": _labels_mismatch,
    "valid ONNX, golden logits not its own (fails the self-test)": _wrong_golden,
    "valid ONNX, NaN logits (fails the self-test)": _nan_logits,
    "valid ONNX without metadata (breaks the contract)": _no_metadata,
}
HALF_WRITTEN = "half written (first half in place; the second half follows once refused)"
