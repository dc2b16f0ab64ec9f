"""``contract.check_signature``: a valid model passes and says what it is; each broken name, type, shape or metadata
key is one named problem, and every problem of a model is collected into one ContractError, names first."""

from __future__ import annotations

import pytest

from cifar10_pipeline.contract import ContractError, ModelInfo, check_signature, encode_metadata
from tests.support.signatures import CHANNELS, HEIGHT, WIDTH, image, logits, metadata_values, problems_of


@pytest.mark.parametrize("batch", ["batch", "N", None], ids=["named", "other-name", "unnamed"])
def test_a_valid_model_passes_and_says_what_it_is(batch):
    info = check_signature([image(shape=(batch, HEIGHT, WIDTH, CHANNELS))], [logits(shape=(batch, 3))],
                           encode_metadata(metadata_values()))
    assert isinstance(info, ModelInfo)
    assert info.labels == ("cat", "dog", "eel") and info.num_classes == 3
    assert (info.height, info.width, info.channels) == (HEIGHT, WIDTH, CHANNELS)
    assert info.input_shape == (28, 30, 1)
    # every key decoded back to its value and type, not left as the stored string
    assert info.metadata == metadata_values()
    assert isinstance(info.metadata["test_accuracy"], float) and isinstance(info.metadata["input_width"], int)


def test_symbolic_image_and_class_dims_are_not_checked_against_the_metadata():
    info = check_signature([image(shape=("batch", "h", "w", CHANNELS))], [logits(shape=("batch", "classes"))],
                           encode_metadata(metadata_values()))
    assert info.input_shape == (HEIGHT, WIDTH, CHANNELS) and info.num_classes == 3


@pytest.mark.parametrize("part, value, problem", [
    ("inputs", [image(name="input")], "inputs are ['input'], expected ['image']"),
    ("inputs", [image(), image(name="mask")], "inputs are ['image', 'mask'], expected ['image']"),
    ("outputs", [logits(name="probs")], "outputs are ['probs'], expected ['logits']"),
    ("inputs", [image(dtype="float32")], "input type is float32, expected uint8"),
    ("inputs", [image(dtype=None)], "input type is None, expected uint8"),
    ("outputs", [logits(dtype="float16")], "output type is float16, expected float32"),
    ("inputs", [image(shape=(8, HEIGHT, WIDTH, CHANNELS))],
     "input shape is [8, 28, 30, 1], expected [batch, H, W, C] with a dynamic batch"),
    ("inputs", [image(shape=("batch", HEIGHT, WIDTH))], "input shape is ['batch', 28, 30], expected [batch, H, W, C] with a dynamic batch"),
    ("outputs", [logits(shape=(1, 3))], "output shape is [1, 3], expected [batch, num_classes] with a dynamic batch"),
    ("outputs", [logits(shape=("batch", 10))], "3 labels but the output has 10 classes"),
    ("inputs", [image(shape=("batch", 32, WIDTH, CHANNELS))],
     "metadata input_height=28 but the input shape is ['batch', 32, 30, 1]"),
    ("inputs", [image(shape=("batch", HEIGHT, 32, CHANNELS))],
     "metadata input_width=30 but the input shape is ['batch', 28, 32, 1]"),
    ("inputs", [image(shape=("batch", HEIGHT, WIDTH, 3))],
     "metadata input_channels=1 but the input shape is ['batch', 28, 30, 3]"),
], ids=["input-name", "two-inputs", "output-name", "input-float", "input-no-numpy-type", "output-half",
        "static-batch", "input-rank-3", "static-output-batch", "label-count", "height", "width", "channels"])
def test_each_broken_part_is_one_named_problem(part, value, problem):
    assert problems_of(**{part: value}) == [problem]


@pytest.mark.parametrize("key, raw, problem", [
    ("parity", None, "metadata key 'parity' is missing"),
    ("labels", None, "metadata key 'labels' is missing"),
    ("input_height", "tall", "metadata 'input_height'='tall' is not a valid int"),
    ("test_accuracy", "high", "metadata 'test_accuracy'='high' is not a valid float"),
    ("train_config", "{lr: 0.1", "metadata 'train_config'='{lr: 0.1' is not a valid json"),
    ("labels", "[]", "metadata 'labels' must be a non-empty JSON list of strings, got []"),
    ("labels", '["cat", 2, "eel"]', "metadata 'labels' must be a non-empty JSON list of strings"),
], ids=["missing-parity", "missing-labels", "bad-int", "bad-float", "bad-json", "no-labels", "label-not-str"])
def test_missing_or_undecodable_metadata_is_refused(key, raw, problem):
    metadata = encode_metadata(metadata_values())
    if raw is None:
        del metadata[key]
    else:
        metadata[key] = raw
    problems = problems_of(metadata=metadata)
    assert len(problems) == 1 and problems[0].startswith(problem), problems


def test_every_problem_is_collected_in_one_error_names_first_metadata_last():
    metadata = encode_metadata(metadata_values())
    del metadata["created"]
    metadata["input_width"] = "wide"
    problems = problems_of(inputs=[image(name="pixels", dtype="float32", shape=(4, HEIGHT, WIDTH, 3))],
                           outputs=[logits(shape=("batch", 5))], metadata=metadata)
    assert problems[0] == "inputs are ['pixels'], expected ['image']"
    assert problems[1:3] == ["input type is float32, expected uint8",
                             "input shape is [4, 28, 30, 3], expected [batch, H, W, C] with a dynamic batch"]
    # then the metadata: undecodable and missing keys in METADATA_KEYS order, then the checks against the shapes
    assert problems[3].startswith("metadata 'input_width'='wide' is not a valid int")
    assert problems[4:] == ["metadata key 'created' is missing", "3 labels but the output has 5 classes",
                            "metadata input_channels=1 but the input shape is [4, 28, 30, 3]"]


def test_the_error_names_a_model_when_the_caller_names_no_source():
    with pytest.raises(ContractError) as err:
        check_signature([image(name="pixels")], [logits()], encode_metadata(metadata_values()))
    assert str(err.value).startswith("model breaks the model contract:") and err.value.source == "model"


def test_every_missing_key_is_named_and_an_undecodable_value_is_shown_up_to_80_characters():
    metadata = encode_metadata(metadata_values())
    del metadata["dataset"], metadata["created"]
    metadata["input_height"] = "9" * 79 + "xyz"
    problems = problems_of(metadata=metadata)
    assert problems[:2] == ["metadata key 'dataset' is missing",
                            f"metadata 'input_height'={'9' * 79 + 'x'!r} is not a valid int: invalid literal for int() "
                            f"with base 10: {'9' * 79 + 'xyz'!r}"]
    assert "metadata key 'created' is missing" in problems


def test_no_inputs_and_no_outputs_are_problems_not_crashes():
    problems = problems_of(inputs=[], outputs=[])
    assert problems[:2] == ["inputs are [], expected ['image']", "outputs are [], expected ['logits']"]
    assert any(p.startswith("input shape is []") for p in problems)
    assert any(p.startswith("output shape is []") for p in problems)
