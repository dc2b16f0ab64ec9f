"""The Dataset record and load_dataset's choice of loader: inconsistent arrays and unknown names are refused."""

import numpy as np
import pytest

from cifar10_pipeline.training.datasets import DataError, Dataset, load_dataset


def test_unknown_dataset_lists_the_choices():
    with pytest.raises(DataError, match="unknown dataset 'cifar100'; choose one of cifar10, fashion-mnist"):
        load_dataset("cifar100")


def test_dataset_refuses_inconsistent_arrays():
    images = np.zeros((3, 2, 2, 1), np.uint8)
    with pytest.raises(ValueError, match="int64 \\[N\\] labels"):
        Dataset("bad", images, np.zeros(2, np.int64), images, np.zeros(3, np.int64), ("a",), (0.0,), (1.0,))
