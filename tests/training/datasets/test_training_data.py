"""prepare_for_training: what a run trains and evaluates on, with the evaluating split named by what it is."""

from __future__ import annotations

import numpy as np
import pytest

from cifar10_pipeline.training.config import TrainConfig
from cifar10_pipeline.training.datasets import load_dataset, prepare_for_training, split_validation


@pytest.fixture(scope="module")
def synthetic():
    return load_dataset("synthetic")


def test_without_a_validation_split_the_test_split_evaluates(synthetic):
    data = prepare_for_training(TrainConfig(dataset="synthetic"))
    assert data.eval_split == "test"
    np.testing.assert_array_equal(data.eval_images, synthetic.test_images)
    np.testing.assert_array_equal(data.eval_labels, synthetic.test_labels)
    np.testing.assert_array_equal(data.train_images, synthetic.train_images)
    assert (data.mean, data.std, data.classes) == (synthetic.mean, synthetic.std, synthetic.classes)
    assert data.image_shape == (32, 32, 3) and data.num_classes == 10


def test_a_validation_split_evaluates_in_place_of_the_test_split(synthetic):
    data = prepare_for_training(TrainConfig(dataset="synthetic", val_fraction=0.1))  # seed 0, as the fixture's
    held_out = split_validation(synthetic, 0.1, seed=0)
    assert data.eval_split == "val" and len(data.eval_images) == 800  # 10% of the 8000 training images
    np.testing.assert_array_equal(data.eval_images, held_out.eval_images)
    np.testing.assert_array_equal(data.train_images, held_out.train_images)
    assert data.mean == held_out.mean != synthetic.mean  # the statistics of the images that train


def test_sample_limits_cut_the_training_images_and_the_evaluating_split_but_not_the_statistics(synthetic):
    config = TrainConfig(dataset="synthetic", val_fraction=0.1, max_train_samples=100, max_test_samples=30)
    data = prepare_for_training(config)
    full = prepare_for_training(TrainConfig(dataset="synthetic", val_fraction=0.1))
    assert (len(data.train_images), len(data.train_labels), len(data.eval_images), len(data.eval_labels)) == \
           (100, 100, 30, 30)
    np.testing.assert_array_equal(data.eval_images, full.eval_images[:30])
    np.testing.assert_array_equal(data.train_labels, full.train_labels[:100])
    assert (data.mean, data.std, data.eval_split) == (full.mean, full.std, "val")
