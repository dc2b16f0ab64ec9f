"""The tests of each framework's own trainer run in that framework's environment only (the Makefile's TF_TESTS name
the TensorFlow ones); the shared trainer tests (test_learning, test_resume, test_cli) run in both, ``--framework``
choosing whose trainer they exercise."""

from __future__ import annotations

from typing import Iterator

import pytest

from cifar10_pipeline.model import frameworks
from cifar10_pipeline.training import gpus

collect_ignore = [name for name, framework in (("test_torch_trainer.py", "torch"),
                                               ("test_keras_trainer.py", "tensorflow"))
                  if not frameworks.get(framework).installed()]


@pytest.fixture
def fresh_warnings() -> Iterator[None]:
    """training.gpus warns once per process: this test starts with nothing said, and the next one too."""
    gpus.warn_once.cache_clear()
    yield
    gpus.warn_once.cache_clear()
