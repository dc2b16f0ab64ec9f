"""split_validation: a stratified, disjoint, deterministic hold-out of the train split, which then evaluates."""

import numpy as np
import pytest

from cifar10_pipeline.training.datasets import DataError, Dataset, split_validation


@pytest.fixture
def numbered():
    """100 one-pixel images whose value is their index, in 4 classes of 40, 30, 20 and 10 images."""
    labels = np.repeat(np.arange(4), [40, 30, 20, 10])
    images = np.arange(100, dtype=np.uint8).reshape(100, 1, 1, 1)
    return Dataset("numbered", images, labels, images[:5], labels[:5], ("a", "b", "c", "d"), (0.0,), (1.0,))


def test_split_validation_holds_out_a_stratified_disjoint_part(numbered, assert_stats):
    split = split_validation(numbered, 0.2, seed=0)
    kept, held = split.train_images.ravel(), split.eval_images.ravel()
    assert (len(kept), len(held)) == (80, 20)
    assert np.bincount(split.eval_labels).tolist() == [8, 6, 4, 2]  # 20 % of each class
    assert set(kept).isdisjoint(held) and sorted({*kept, *held}) == list(range(100))
    assert (np.diff(kept) > 0).all() and (np.diff(held) > 0).all()  # both parts keep the original order
    # every image keeps its own label
    np.testing.assert_array_equal(split.train_labels, numbered.train_labels[kept])
    np.testing.assert_array_equal(split.eval_labels, numbered.train_labels[held])
    assert split.name == "numbered" and split.classes == numbered.classes and split.eval_split == "val"
    assert_stats(split)


def test_split_validation_is_deterministic_per_seed(numbered):
    first, again, other = (split_validation(numbered, 0.2, seed) for seed in (5, 5, 6))
    np.testing.assert_array_equal(first.eval_images, again.eval_images)
    assert not np.array_equal(first.eval_images, other.eval_images)


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 1.5])
def test_split_validation_refuses_a_bad_fraction(numbered, fraction):
    with pytest.raises(DataError, match=f"got {fraction}"):
        split_validation(numbered, fraction, seed=0)


def test_split_validation_refuses_an_empty_part():
    images, labels = np.zeros((2, 1, 1, 1), np.uint8), np.array([0, 1])  # one image per class: nothing to spare
    one_each = Dataset("tiny", images, labels, images, labels, ("a", "b"), (0.0,), (1.0,))
    with pytest.raises(DataError, match="one part would be empty"):
        split_validation(one_each, 0.5, seed=0)
