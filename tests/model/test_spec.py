"""The framework-neutral network spec (``model.spec``): its dict form, older dicts, and the pooling-order switch."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from cifar10_pipeline.model.spec import ModelSpec, pooling_last_blocks

SPEC = ModelSpec((28, 28, 1), 10, (72.9,), (90.0,), width=32, dropout=0.1, tta=True)


def test_a_spec_survives_its_dict_through_json():
    # a model file holds the dict: JSON (or pickle) turns the tuples into lists
    assert ModelSpec.from_dict(json.loads(json.dumps(SPEC.to_dict()))) == SPEC
    assert SPEC.to_dict()["tta"] is True and "flip_tta" not in SPEC.to_dict()


def test_an_older_dict_that_names_tta_flip_tta_reads_as_tta():
    older = {("flip_tta" if k == "tta" else k): v for k, v in SPEC.to_dict().items()}
    assert ModelSpec.from_dict(older) == SPEC


def test_pooling_last_blocks_switches_every_block_for_the_context_only():
    blocks = [SimpleNamespace(pool_last=False) for _ in range(3)]
    with pooling_last_blocks(iter(blocks)):  # a generator, as the networks pass it: read once
        assert all(b.pool_last for b in blocks)
    assert not any(b.pool_last for b in blocks)
    with pytest.raises(RuntimeError), pooling_last_blocks(blocks):
        raise RuntimeError("the export failed")
    assert not any(b.pool_last for b in blocks)  # restored on an error too
