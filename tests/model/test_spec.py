"""The framework-neutral network spec (``model.spec``): its dict form, older dicts, and the pooling-order switch."""

from __future__ import annotations

import dataclasses
import json
from types import SimpleNamespace

import pytest

import numpy as np

from cifar10_pipeline.model.spec import ModelSpec, pooling_last_blocks, shifted_index

SPEC = ModelSpec((28, 28, 1), 10, (72.9,), (90.0,), width=32, dropout=0.1, tta=True)


def test_a_spec_survives_its_dict_through_json():
    # a model file holds the dict: JSON (or pickle) turns the tuples into lists
    assert ModelSpec.from_dict(json.loads(json.dumps(SPEC.to_dict()))) == SPEC
    assert SPEC.to_dict()["tta"] is True and "flip_tta" not in SPEC.to_dict()


def test_an_older_dict_that_names_tta_flip_tta_reads_as_tta():
    older = {("flip_tta" if k == "tta" else k): v for k, v in SPEC.to_dict().items()}
    assert ModelSpec.from_dict(older) == SPEC


def test_an_older_dict_without_tta_shift_reads_as_unshifted():
    older = {k: v for k, v in SPEC.to_dict().items() if k != "tta_shift"}
    assert ModelSpec.from_dict(older).tta_shift == 0


@pytest.mark.parametrize("tta, shift, count", [(False, 0, 1), (True, 0, 2), (False, 1, 3), (True, 2, 6)])
def test_the_tta_views_weigh_the_unshifted_image_as_much_as_both_diagonal_shifts(tta, shift, count):
    views = dataclasses.replace(SPEC, tta=tta, tta_shift=shift).tta_views()
    assert len(views) == count and len(set((s, m) for s, m, _ in views)) == count
    assert sum(w for *_, w in views) == pytest.approx(1.0)
    unshifted = sum(w for s, _, w in views if s == (0, 0))
    assert unshifted == pytest.approx(1.0 if not shift else 0.5)
    assert {s for s, *_ in views} == ({(0, 0), (-shift, -shift), (shift, shift)} if shift else {(0, 0)})
    assert {m for _, m, _ in views} == ({False, True} if tta else {False})
    for s in {s for s, *_ in views}:  # a mirrored view weighs as much as its unmirrored twin
        assert len({w for s2, _, w in views if s2 == s}) == 1


@pytest.mark.parametrize("tta, shift", [(False, 1), (True, 1), (True, 2)])
def test_the_tta_views_along_the_axes_move_the_image_each_way_and_weigh_the_same(tta, shift):
    views = dataclasses.replace(SPEC, tta=tta, tta_shift=shift, tta_shift_axes=True).tta_views()
    mirrors = {False, True} if tta else {False}
    assert len(views) == 5 * len(mirrors) and {m for _, m, _ in views} == mirrors
    assert {s for s, *_ in views} == {(0, 0), (shift, 0), (-shift, 0), (0, shift), (0, -shift)}
    assert [w for *_, w in views] == pytest.approx([1 / len(views)] * len(views))


def test_without_a_shift_the_axes_add_no_view():
    assert dataclasses.replace(SPEC, tta_shift_axes=True).tta_views() == SPEC.tta_views()


def test_an_older_dict_without_tta_shift_axes_reads_as_diagonal_shifts():
    spec = dataclasses.replace(SPEC, tta_shift=1)
    older = {k: v for k, v in spec.to_dict().items() if k != "tta_shift_axes"}
    assert ModelSpec.from_dict(older) == spec and spec.tta_shift_axes is False


@pytest.mark.parametrize("n, shift", [(5, 1), (5, -1), (6, 2), (4, -3), (7, 0)])
def test_shifted_index_reads_the_image_moved_by_shift_with_symmetric_reflection(n, shift):
    # numpy's "symmetric" padding repeats the edge pixel (-1 -> 0), as the training shifts reflect
    row = np.arange(n)
    padded = np.pad(row, abs(shift), mode="symmetric")
    expected = padded[abs(shift) - shift:abs(shift) - shift + n]
    assert shifted_index(n, shift) == expected.tolist()
    if 0 < shift < n:  # moved down (right): the first pixel lands at position ``shift``
        assert shifted_index(n, shift)[shift] == 0


def test_pooling_last_blocks_switches_every_block_for_the_context_only():
    blocks = [SimpleNamespace(pool_last=False) for _ in range(3)]
    with pooling_last_blocks(iter(blocks)):  # a generator, as the networks pass it: read once
        assert all(b.pool_last for b in blocks)
    assert not any(b.pool_last for b in blocks)
    with pytest.raises(RuntimeError), pooling_last_blocks(blocks):
        raise RuntimeError("the export failed")
    assert not any(b.pool_last for b in blocks)  # restored on an error too
