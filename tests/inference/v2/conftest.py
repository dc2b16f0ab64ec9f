"""Fixtures of the v2 tests: the venv of NVIDIA's tritonclient, which both the HTTP and the gRPC client tests drive."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def triton_python(tmp_path_factory) -> Path:
    """The interpreter of a new venv holding tritonclient[http,grpc] and numpy, apart from the project's packages
    (tritonclient's pins clash with them); made once per session for every test that needs it."""
    venv = tmp_path_factory.mktemp("tritonclient") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    subprocess.run([venv / "bin/pip", "install", "-q", "--disable-pip-version-check", "tritonclient[http,grpc]",
                    "numpy"], check=True, timeout=900)
    return venv / "bin/python"
