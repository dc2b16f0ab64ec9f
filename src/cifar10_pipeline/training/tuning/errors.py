"""The tuner's own error, and the errors a tuning command reports in one line (exit status 2)."""

from __future__ import annotations

from cifar10_pipeline.training.config import ConfigError
from cifar10_pipeline.training.datasets import DataError
from cifar10_pipeline.training.gpus import DeviceError
from cifar10_pipeline.training.run import RunError


class TuneError(Exception):
    """A tuning setting or storage a user got wrong; the message names the offending value."""


# a user's mistake or missing data, not a bug: the message is printed instead of a traceback
USER_ERRORS = (TuneError, ConfigError, DataError, DeviceError, RunError)
