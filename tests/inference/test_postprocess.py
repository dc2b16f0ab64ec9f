"""Post-processing of logits: one top-k (best first, ties in class order) behind /predict's ranked labels and the v2
classification strings, and softmax probabilities."""

from __future__ import annotations

import numpy as np
import pytest

from cifar10_pipeline.inference.postprocess import rank, softmax, top_k
from cifar10_pipeline.inference.v2.codec import classify

LABELS = ("a", "b", "c", "d")
# row 0 has a tie between classes 1 and 3; row 1 is in reverse order; row 2 has logits far beyond exp's range
LOGITS = np.array([[0.0, 2.0, -1.0, 2.0], [4.0, 3.0, 2.0, 1.0], [1000.0, -1000.0, 999.0, 0.0]], np.float32)


def test_top_k_is_best_first_and_ties_keep_the_class_order():
    assert top_k(LOGITS, 3).tolist() == [[1, 3, 0], [0, 1, 2], [0, 2, 3]]
    assert top_k(LOGITS, 1).tolist() == [[1], [0], [0]]


def test_softmax_is_finite_and_sums_to_one_at_any_scale():
    probabilities = softmax(LOGITS)
    assert np.isfinite(probabilities).all()
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-6)
    assert probabilities[2, 0] == pytest.approx(1 / (1 + np.exp(-1.0)), rel=1e-5)


def test_rank_lists_the_best_labels_with_their_probabilities():
    ranked = rank(LOGITS, LABELS, 2)
    p = softmax(LOGITS)
    assert [r["label"] for r in ranked] == ["b", "a", "a"]
    assert [r["probability"] for r in ranked] == pytest.approx([p[0, 1], p[1, 0], p[2, 0]])
    assert [[t["label"] for t in r["top_k"]] for r in ranked] == [["b", "d"], ["a", "b"], ["a", "c"]]
    assert ranked[0]["top_k"][0]["probability"] == ranked[0]["top_k"][1]["probability"]  # the tie, in label order


def test_classification_strings_follow_the_same_top_k():
    strings = classify(LOGITS, LABELS, 2)
    assert strings == ["2.0:1:b", "2.0:3:d", "4.0:0:a", "3.0:1:b", "1000.0:0:a", "999.0:2:c"]
    ranked = rank(LOGITS, LABELS, 2)
    assert [s.split(":")[2] for s in strings] == [t["label"] for r in ranked for t in r["top_k"]]
