"""ServiceConfig from the environment: parsed values, defaults, and bad values refused by name."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cifar10_pipeline.inference.config import ServiceConfig


def test_config_from_environment():
    config = ServiceConfig.from_env(
        {
            "INFERENCE_MODEL_PATH": "/models/x.onnx",
            "INFERENCE_MAX_FILES": "4",
            "INFERENCE_BATCH_MAX_WAIT_MS": "0.5",
            "INFERENCE_PROVIDERS": "CUDAExecutionProvider, CPUExecutionProvider",
            "INFERENCE_MAX_PIXELS": "",  # empty: the default
            "INFERENCE_BATCH_WORKERS": "3",
        }
    )
    assert config.model_path == Path("/models/x.onnx") and config.max_files == 4 and config.batch_workers == 3
    assert config.batch_max_wait_ms == 0.5 and config.max_pixels == ServiceConfig.max_pixels
    assert config.providers == ("CUDAExecutionProvider", "CPUExecutionProvider")
    assert ServiceConfig.from_env({}).batch_workers == len(os.sched_getaffinity(0))  # default: one per CPU


@pytest.mark.parametrize(
    "env, message",
    [
        ({"INFERENCE_MAX_FILES": "many"}, "INFERENCE_MAX_FILES='many' is not a valid int"),
        ({"INFERENCE_MAX_UPLOAD_BYTES": "0"}, "max_upload_bytes must be >= 1, got 0"),
        ({"INFERENCE_RELOAD_POLL_S": "-1"}, "reload_poll_s must be >= 0, got -1.0"),
        ({"INFERENCE_BATCH_WORKERS": "0"}, "batch_workers must be >= 1, got 0"),
        ({"INFERENCE_INFER_TIMEOUT_S": "0"}, "infer_timeout_s must be > 0, got 0.0"),
    ],
)
def test_bad_config_is_refused_naming_the_value(env, message):
    with pytest.raises(ValueError) as e:
        ServiceConfig.from_env(env)
    assert message in str(e.value)
