"""A stand-in for stdout that records each write and flush apart, as a pipe to a log collector sees them."""

from __future__ import annotations


class Piped:
    def __init__(self) -> None:
        self.events: list[str] = []

    def write(self, text: str) -> int:
        self.events.append(text)
        return len(text)

    def flush(self) -> None:
        self.events.append("<flush>")
