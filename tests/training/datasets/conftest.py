"""Fixtures of the data layer tests. Everything runs offline on tiny files each test module builds.

``assert_stats`` checks a Dataset's per-channel mean/std against its train images, for every loader. Every test
gets its own empty cache folder (``cache_home``, the XDG_CACHE_HOME the folder loader's cache lives under), so
none reads another's cached arrays or the user's.
"""

from __future__ import annotations

import numpy as np
import pytest

from cifar10_pipeline.training.datasets import Dataset


@pytest.fixture(autouse=True)
def cache_home(tmp_path_factory, monkeypatch):
    home = tmp_path_factory.mktemp("cache")
    monkeypatch.setenv("XDG_CACHE_HOME", str(home))
    return home


@pytest.fixture
def assert_stats():
    """A check that ``ds.mean`` / ``ds.std`` are the per-channel statistics of ``ds.train_images``, in pixel units."""

    def check(ds: Dataset) -> None:
        flat = ds.train_images.reshape(-1, ds.train_images.shape[-1]).astype(np.float64)
        np.testing.assert_allclose(ds.mean, flat.mean(axis=0), rtol=1e-9)
        np.testing.assert_allclose(ds.std, flat.std(axis=0), rtol=1e-9)

    return check
