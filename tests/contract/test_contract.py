"""The ``contract`` package: check_signature, encode_metadata, golden_input, and what importing it costs (its core
numpy alone, its image decoder, ``contract.images``, Pillow too; the decoder's behaviour: test_images.py; the
arrows between all the packages: tests/test_import_arrows.py).

Models are described here as plain TensorSpec values, the way ``export`` and ``inference`` describe theirs after
reading a file with their own engine, so no ONNX tooling is needed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, version

import numpy as np
import pytest

from cifar10_pipeline.contract import (GOLDEN_SEED, INPUT_NAME, METADATA_KEYS, OPTIONAL_METADATA_KEYS, OUTPUT_NAME, ContractError,
                      ModelInfo, TensorSpec, check_signature, decode_metadata, encode_metadata, golden_input,
                      golden_reference, is_quantized)
from cifar10_pipeline import contract
from tests.support.imports import imports_of
from tests.support.paths import REPO

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


# ------------------------------------------------------------------------------------------- check_signature


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


def test_files_are_stamped_with_the_installed_version_or_say_it_is_not_installed(monkeypatch):
    assert contract.project_version() == version("cifar10-pipeline")

    def not_installed(name):
        raise PackageNotFoundError(name)

    monkeypatch.setattr(contract, "version", not_installed)
    assert contract.project_version() == "unknown (not installed)"


def test_no_inputs_and_no_outputs_are_problems_not_crashes():
    problems = problems_of(inputs=[], outputs=[])
    assert problems[:2] == ["inputs are [], expected ['image']", "outputs are [], expected ['logits']"]
    assert any(p.startswith("input shape is []") for p in problems)
    assert any(p.startswith("output shape is []") for p in problems)


# ------------------------------------------------------------------------------------------- encode_metadata


def test_encode_metadata_stores_strings_that_decode_back():
    encoded = encode_metadata(metadata_values())
    assert set(encoded) == set(METADATA_KEYS) and all(isinstance(v, str) for v in encoded.values())
    assert encoded["input_height"] == "28" and encoded["dataset"] == "folder"
    assert json.loads(encoded["labels"]) == LABELS and json.loads(encoded["parity"]) == metadata_values()["parity"]
    assert decode_metadata(encoded) == (metadata_values(), [])


@pytest.mark.parametrize("change, problems", [
    (lambda v: v.pop("created"), ["missing keys ['created']"]),
    (lambda v: [v.pop("labels"), v.pop("dataset")], ["missing keys ['dataset', 'labels']"]),
    (lambda v: v.update(accuracy=0.9), ["unknown keys ['accuracy']"]),
    (lambda v: [v.pop("parity"), v.update(parity_report={})], ["missing keys ['parity']",
                                                               "unknown keys ['parity_report']"]),
], ids=["missing", "two-missing", "unknown", "missing-and-unknown"])
def test_encode_metadata_refuses_missing_and_unknown_keys(change, problems):
    values = metadata_values()
    change(values)
    with pytest.raises(ContractError) as err:
        encode_metadata(values)
    assert err.value.problems == problems and err.value.source == "metadata"


# ------------------------------------------------------------------------------------ quantized files' metadata

QUANTIZATION = {"method": {"format": "QDQ"}, "calibration_images": 512, "float_test_accuracy": 0.9,
                "int8_test_accuracy": 0.899, "top1_agreement": 0.99, "max_abs_diff": 0.2,
                "golden": {"seed": 0, "batch": 2, "logits": [[0.25]], "atol": 0.05}}


def test_quantization_is_the_one_optional_key_and_round_trips():
    assert set(OPTIONAL_METADATA_KEYS) == {"quantization"} and not set(OPTIONAL_METADATA_KEYS) & set(METADATA_KEYS)
    encoded = encode_metadata(metadata_values(quantization=QUANTIZATION))
    assert json.loads(encoded["quantization"]) == QUANTIZATION
    assert decode_metadata(encoded) == (metadata_values(quantization=QUANTIZATION), [])
    info = check_signature([image()], [logits()], encoded)
    assert info.metadata["quantization"] == QUANTIZATION and is_quantized(info.metadata)
    assert not is_quantized(check_signature([image()], [logits()], encode_metadata(metadata_values())).metadata)


def test_a_quantized_file_still_needs_every_required_key_and_no_unknown_one():
    values = metadata_values(quantization=QUANTIZATION, quantisation={})
    del values["parity"]
    with pytest.raises(ContractError) as err:
        encode_metadata(values)
    assert err.value.problems == ["missing keys ['parity']", "unknown keys ['quantisation']"]


def test_a_quantization_entry_that_is_not_an_object_is_refused():
    metadata = encode_metadata(metadata_values())
    metadata["quantization"] = "[1, 2]"
    assert problems_of(metadata=metadata) == ["metadata 'quantization' must be a JSON object, got [1, 2]"]


def test_the_golden_reference_is_the_quantization_reports_for_a_quantized_file():
    assert golden_reference(metadata_values()) == metadata_values()["parity"]["golden"]
    assert golden_reference(metadata_values(quantization=QUANTIZATION)) == QUANTIZATION["golden"]
    assert golden_reference(metadata_values(quantization={"method": {}})) == {}  # none: the caller decides
    assert golden_reference(metadata_values(parity=[])) == {}


# ---------------------------------------------------------------------------------------------- golden_input


def hashed_pixels(count: int, start: int) -> list[int]:
    """The documented pixel rule in plain Python: the top 8 bits of Knuth's hash of the element index."""
    return [(index * 2654435761 % 2**32) >> 24 for index in range(start, start + count)]


def test_golden_input_is_uint8_of_the_asked_shape():
    x = golden_input(2, 4, 5, 3)
    assert x.dtype == np.uint8 and x.shape == (2, 4, 5, 3)
    assert len(np.unique(x)) > 50  # 120 hashed bytes are spread out, not a constant or a ramp


@pytest.mark.parametrize("seed", [0, 1, 7, 40_000])  # 40,000: indices past 2**32 / the multiplier's 3**32 / 2**32
def test_golden_input_follows_the_documented_hash(seed):
    n = 2 * 3 * 4 * 3
    x = golden_input(2, 3, 4, 3, seed=seed)
    # seed s continues the index sequence after the s * n elements of the seeds before it
    assert x.ravel().tolist() == hashed_pixels(n, start=seed * n)


def test_golden_input_starts_with_known_bytes():
    assert golden_input(1, 1, 1, 3, seed=0).ravel().tolist() == [0, 158, 60]
    assert golden_input(1, 1, 1, 3).tolist() == golden_input(1, 1, 1, 3, seed=GOLDEN_SEED).tolist()


def test_golden_input_is_deterministic_differs_per_seed_and_ignores_the_global_rng():
    np.random.seed(1)
    first = golden_input(2, 8, 8, 3, seed=0)
    np.random.seed(2)
    np.random.random(100)  # move numpy's global stream on: it must not matter
    again = golden_input(2, 8, 8, 3, seed=0)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, golden_input(2, 8, 8, 3, seed=1))


# --------------------------------------------------------------------------------- what importing contract costs

PROJECT = "cifar10_pipeline"
HEAVY = ("onnxruntime", "onnx", "torch", "tensorflow", "flask", f"{PROJECT}.training", f"{PROJECT}.export",
         f"{PROJECT}.inference", f"{PROJECT}.model")


@pytest.mark.parametrize("module, loaded", [(f"{PROJECT}.contract", []), (f"{PROJECT}.contract.images", ["PIL"])])
def test_importing_contract_loads_no_engine_framework_or_web_stack(module, loaded):
    # the core stays numpy-only: Pillow is loaded by the image decoder alone
    probe = (f"import json, sys, {module}; "
             f"print(json.dumps(sorted({{n for n in {[*HEAVY, 'PIL']!r} for m in sys.modules "
             f"if m == n or m.startswith(n + '.')}})))")
    result = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == loaded


# what each contract module may import besides the standard library and contract itself
CONTRACT_THIRD_PARTY = {"contract": {"numpy"}, "contract.images": {"numpy", "PIL"}}


def test_contract_modules_import_numpy_and_only_the_decoder_pillow():
    package = REPO / "src" / PROJECT / "contract"
    modules = {".".join(p.relative_to(package.parent).with_suffix("").parts).removesuffix(".__init__"): p
               for p in sorted(package.rglob("*.py"))}
    assert set(modules) == set(CONTRACT_THIRD_PARTY), "a new contract module: say what it may import"
    for module, path in modules.items():
        imported = {name.split(".")[0] for name in imports_of(path)}
        assert imported - set(sys.stdlib_module_names) - {PROJECT} <= CONTRACT_THIRD_PARTY[module]
