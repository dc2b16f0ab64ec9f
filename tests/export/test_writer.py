"""The atomic write: a reader sees the old file or the whole new one."""

from __future__ import annotations

import pytest

from export.writer import write_atomic


def test_atomic_write_keeps_the_old_file_when_the_write_fails(tmp_path):
    path = tmp_path / "model.onnx"
    write_atomic(b"old", path)
    with pytest.raises(TypeError):
        write_atomic("not bytes", path)  # fails after the temporary file was created
    assert path.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["model.onnx"]
