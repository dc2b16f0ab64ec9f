"""A valid model's signature as the contract tests describe it: plain TensorSpec values and metadata, the way
``export`` and ``inference`` describe a file after reading it with their own engine, so no ONNX tooling is needed;
and ``problems_of``, the problems ``check_signature`` reports when parts of that model are replaced. Shared by
tests/contract/test_signature.py and test_metadata.py."""

from __future__ import annotations

import pytest

from cifar10_pipeline.contract import (INPUT_NAME, OUTPUT_NAME, ContractError, TensorSpec, check_signature,
                                       encode_metadata)

LABELS = ["cat", "dog", "eel"]
HEIGHT, WIDTH, CHANNELS = 28, 30, 1  # all different, so a swapped axis shows


def metadata_values(**overrides) -> dict:
    """Values for every metadata key of a model with LABELS and a HEIGHT x WIDTH x CHANNELS input."""
    return {
        "labels": LABELS,
        "dataset": "folder",
        "framework": "torch",
        "framework_version": "2.5.0",
        "input_height": HEIGHT,
        "input_width": WIDTH,
        "input_channels": CHANNELS,
        "test_accuracy": 0.75,
        "train_config": {"lr": 0.1, "epochs": 3},
        "parity": {"max_abs_diff": 1e-6, "golden": {"seed": 0, "batch": 2, "logits": [[0.5]], "atol": 0.01}},
        "created": "2026-01-01T00:00:00+00:00",
        "project_version": "0.1.0",
        **overrides,
    }


def image(dtype="uint8", shape=("batch", HEIGHT, WIDTH, CHANNELS), name=INPUT_NAME) -> TensorSpec:
    return TensorSpec(name, dtype, shape)


def logits(dtype="float32", shape=("batch", len(LABELS)), name=OUTPUT_NAME) -> TensorSpec:
    return TensorSpec(name, dtype, shape)


def problems_of(inputs=None, outputs=None, metadata=None) -> list[str]:
    """The problems check_signature reports for the valid model with the given parts replaced."""
    with pytest.raises(ContractError) as err:
        check_signature([image()] if inputs is None else inputs, [logits()] if outputs is None else outputs,
                        encode_metadata(metadata_values()) if metadata is None else metadata, source="m.onnx")
    assert str(err.value).startswith("m.onnx breaks the model contract:")
    assert all(f"\n  - {p}" in str(err.value) for p in err.value.problems)  # every problem is in the message
    return err.value.problems
