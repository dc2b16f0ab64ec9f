"""The contract's metadata: ``encode_metadata`` stores strings that decode back and refuses missing or unknown keys;
a quantized file's one optional key (``quantization``) and the golden reference it carries; the project version
every file is stamped with."""

from __future__ import annotations

import json
from importlib.metadata import PackageNotFoundError, version

import pytest

from cifar10_pipeline import contract
from cifar10_pipeline.contract import (METADATA_KEYS, OPTIONAL_METADATA_KEYS, ContractError, check_signature,
                                       decode_metadata, encode_metadata, golden_reference, is_quantized)
from tests.support.signatures import LABELS, image, logits, metadata_values, problems_of


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


def test_files_are_stamped_with_the_installed_version_or_say_it_is_not_installed(monkeypatch):
    assert contract.project_version() == version("cifar10-pipeline")

    def not_installed(name):
        raise PackageNotFoundError(name)

    monkeypatch.setattr(contract, "version", not_installed)
    assert contract.project_version() == "unknown (not installed)"
