"""The atomic write every package uses: a reader sees the old file or the whole new one."""

from __future__ import annotations

import os
import stat

import pytest

from cifar10_pipeline.files import atomic_path, write_bytes, write_json


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary_one(tmp_path):
    path = tmp_path / "model.onnx"
    write_bytes(path, b"old")
    with pytest.raises(TypeError):
        write_bytes(path, "not bytes")  # fails after the temporary file was created
    assert path.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["model.onnx"]


def test_the_new_file_appears_whole_under_its_name_only_when_the_block_ends(tmp_path):
    path = tmp_path / "sub" / "model.keras"  # the folder is made
    with atomic_path(path, suffix=".keras") as tmp:
        assert tmp.parent == path.parent and tmp.name.endswith(".keras") and tmp != path
        tmp.write_bytes(b"new")
        assert not path.exists()
    assert path.read_bytes() == b"new" and [p.name for p in path.parent.iterdir()] == ["model.keras"]


def test_the_file_is_readable_by_others_as_the_umask_allows(tmp_path):
    old = os.umask(0o022)
    try:
        write_json(tmp_path / "report.json", {"a": 1})
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "report.json").stat().st_mode) == 0o644  # not mkstemp's 0600
    assert (tmp_path / "report.json").read_text() == '{\n  "a": 1\n}\n'
