"""Shared fixtures: a tiny run of each trainer on the synthetic data set, trained once per test session.

Each trainer module is imported inside its fixture: the PyTorch and the TensorFlow suites run in their own
environments, and neither framework is imported where it is not installed."""

from __future__ import annotations

import pytest

from training.config import TrainConfig

# Small enough for 2 CPU cores in well under a minute, large enough to learn far above chance (10%).
TINY = {"dataset": "synthetic", "epochs": 3, "width": 16, "batch_size": 128, "lr": 0.1,
        "max_train_samples": 3000, "max_test_samples": 1000}


def tiny_config(tmp_path, **overrides) -> TrainConfig:
    return TrainConfig.from_dict({**TINY, "runs_dir": str(tmp_path / "runs"), "run_name": "tiny", **overrides})


@pytest.fixture(scope="session")
def torch_run(tmp_path_factory):
    """A finished tiny PyTorch run (its TrainResult)."""
    from training.train_torch import train

    return train(tiny_config(tmp_path_factory.mktemp("torch")))


@pytest.fixture(scope="session")
def tf_run(tmp_path_factory):
    """A finished tiny TensorFlow run, the twin of torch_run."""
    from training.train_tf import train

    return train(tiny_config(tmp_path_factory.mktemp("tf")))
