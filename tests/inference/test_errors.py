"""The API's error type."""

from __future__ import annotations

from cifar10_pipeline.inference.errors import ApiError


def test_api_error_carries_its_status():
    e = ApiError(418, "short and stout")
    assert (e.status, e.message, str(e)) == (418, "short and stout", "short and stout")
