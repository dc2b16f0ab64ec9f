"""TensorFlow only: the Keras parity runner answers in inference mode. (Export with parity itself:
tests/export/ with ``--framework tensorflow`` in ``.venv-tf``.)"""

from __future__ import annotations

import numpy as np

from cifar10_pipeline.export.keras_converter import KerasRunner
from cifar10_pipeline.training.datasets import load_dataset


def test_keras_runner_is_in_inference_mode(converted):
    runner = converted.runner
    assert isinstance(runner, KerasRunner)
    images = load_dataset("synthetic").test_images[:64]
    first, second = runner.infer({"image": images})["logits"], runner.infer({"image": images})["logits"]
    np.testing.assert_array_equal(first, second)  # no dropout
    # BatchNorm uses its running statistics: one image's logits do not depend on the rest of the batch
    np.testing.assert_allclose(runner.infer({"image": images[:1]})["logits"], first[:1], atol=1e-5)
