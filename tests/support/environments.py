"""The environments of their own that the Makefile makes (onnxruntime-openvino, tritonclient[grpc]), made by its
own recipe into a test's folder: the tests use what `make targets` uses."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from cifar10_pipeline.export.targets.environments import Environment
from tests.support.paths import REPO

INSTALL_TIMEOUT_S = 1800


def make_environment(environment: Environment, folder: Path) -> Path:
    """``make <environment.make_install>`` with the environment moved to ``folder``; its interpreter."""
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    result = subprocess.run(["make", "-C", str(REPO), environment.make_install, f"{environment.variable}={folder}"],
                            capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    return folder / "bin" / "python"
