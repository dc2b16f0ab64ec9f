"""Waiting for something that happens in another thread (the model watcher, a server starting)."""

from __future__ import annotations

import time

import pytest

WAIT_S = 30.0  # upper bound on waiting for the watcher; a healthy run needs a few polls of 0.02 s


def wait_for(condition, what: str):
    """Poll ``condition`` until it returns something truthy; fail naming ``what`` after WAIT_S."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if result := condition():
            return result
        time.sleep(0.02)
    pytest.fail(f"gave up after {WAIT_S} s waiting for {what}")
