"""Talking to the service's API through Flask's test client, and reading what it answers."""

from __future__ import annotations

import hashlib
import io
import re
from pathlib import Path


def post_files(client, files: list[tuple[str, bytes]], query: str = "", field: str = "file"):
    data = {}
    for i, (name, content) in enumerate(files):
        data[f"{field}{i}"] = (io.BytesIO(content), name)
    return client.post(f"/predict{query}", data=data, content_type="multipart/form-data")


def parse_metrics(text: str) -> dict[str, float]:
    """Prometheus text -> {'name{labels}': value}; fails on any line that is not a comment or a sample."""
    samples = {}
    for line in text.splitlines():
        if line.startswith("#"):
            assert re.fullmatch(r"# (HELP|TYPE) \w+ .+", line), line
            continue
        match = re.fullmatch(r'(\w+(?:\{(?:\w+="(?:[^"\\]|\\.)*",?)*\})?) (\S+)', line)
        assert match, f"not a Prometheus sample: {line!r}"
        samples[match[1]] = float(match[2])
    return samples


def sha256(path: Path) -> str:
    """The model id the service gives the file at ``path``."""
    return hashlib.sha256(path.read_bytes()).hexdigest()
