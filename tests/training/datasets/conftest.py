"""Fixtures of the data layer tests. Everything runs offline on tiny files each test module builds.

``assert_stats`` checks a Dataset's per-channel mean/std against its train images, for every loader.
"""

from __future__ import annotations

import numpy as np
import pytest

from training.datasets import Dataset


@pytest.fixture
def assert_stats():
    """A check that ``ds.mean`` / ``ds.std`` are the per-channel statistics of ``ds.train_images``, in pixel units."""

    def check(ds: Dataset) -> None:
        flat = ds.train_images.reshape(-1, ds.train_images.shape[-1]).astype(np.float64)
        np.testing.assert_allclose(ds.mean, flat.mean(axis=0), rtol=1e-9)
        np.testing.assert_allclose(ds.std, flat.std(axis=0), rtol=1e-9)

    return check
