"""The one exception type for requests the service refuses: it carries the HTTP status to answer with."""

from __future__ import annotations


class ApiError(Exception):
    """A refused request; the app's error handler answers ``status`` with ``{"error": message}``."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message
