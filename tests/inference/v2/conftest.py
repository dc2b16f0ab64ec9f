"""Fixtures of the v2 tests: NVIDIA's tritonclient, which both the HTTP and the gRPC client tests drive."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def triton_python(tritonclient_python) -> Path:
    """The interpreter of the tritonclient[http,grpc] environment `make install-tritonclient` makes (pinned by
    constraints-tritonclient.txt, apart from the project's packages: tritonclient's pins clash with them)."""
    return tritonclient_python
