"""Bad CIFAR-10 inputs, each a clear DataError naming the file at fault: a wrong checksum, an archive that is not
one or would write outside its folder, a missing, corrupt or foreign batch file, a pickle that would run code, no
folder with download off. Each builder fills tmp_path and returns (data_dir, the path the error must name)."""

from __future__ import annotations

import io
import pickle
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest

from cifar10_pipeline.training.datasets import DataError, cifar10, load_dataset
from tests.support.cifar_archive import ARCHIVE, md5


def _archive(tmp: Path, content: bytes) -> tuple[Path, Path]:
    (tmp / ARCHIVE).write_bytes(content)
    return tmp, tmp / ARCHIVE


def _tar_gz(members: dict[str, bytes], links: dict[str, str] | None = None) -> bytes:
    """A gzipped tar of regular files (name -> content) and symbolic links (name -> target)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, content in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
    return buffer.getvalue()


def _tree_with(tmp: Path, cifar, name: str, content: bytes | None) -> tuple[Path, Path]:
    """The extracted tree with batch file `name` replaced by content, or deleted when content is None."""
    folder = shutil.copytree(cifar.root / "cifar-10-batches-py", tmp / "cifar-10-batches-py")
    if content is None:
        (folder / name).unlink()
    else:
        (folder / name).write_bytes(content)
    return tmp, folder / name


@pytest.mark.parametrize("prepare, own_md5, phrases", [
    pytest.param(lambda tmp, cifar: _archive(tmp, cifar.archive.read_bytes()), False,
                 ["has md5", cifar10.CIFAR10_MD5, "Delete it"], id="wrong-checksum"),
    pytest.param(lambda tmp, cifar: _archive(tmp, np.random.default_rng(0).bytes(4096)), True,
                 ["cannot be extracted", "corrupt, truncated", "Delete it"], id="random-bytes"),
    pytest.param(lambda tmp, cifar: _archive(tmp, cifar.archive.read_bytes()[: cifar.archive.stat().st_size // 2]),
                 True, ["cannot be extracted", "corrupt, truncated", "Delete it"], id="truncated"),
    pytest.param(lambda tmp, cifar: _archive(tmp, _tar_gz({"readme.txt": b"hi"})), True,
                 ["has no cifar-10-batches-py/", "not the CIFAR-10 archive"], id="no-batches-folder"),
    pytest.param(lambda tmp, cifar: _archive(tmp, _tar_gz({"../escape.txt": b"x"})), True,
                 ["cannot be extracted", "escape.txt"], id="unsafe-member"),
    pytest.param(lambda tmp, cifar: _archive(tmp, _tar_gz({"/tmp/absolute.txt": b"x"})), True,
                 ["cannot be extracted", "absolute.txt"], id="absolute-member"),
    pytest.param(lambda tmp, cifar: _archive(tmp, _tar_gz({}, {"cifar-10-batches-py/test_batch": "/etc/passwd"})),
                 True, ["cannot be extracted", "is a link"], id="link-member"),
    pytest.param(lambda tmp, cifar: _tree_with(tmp, cifar, "data_batch_3", None), False,
                 ["is missing", "Delete"], id="missing-batch"),
    pytest.param(lambda tmp, cifar: _tree_with(tmp, cifar, "data_batch_2", b"\x80\x02garbage"), False,
                 ["is corrupt", "Delete"], id="corrupt-batch"),
    pytest.param(lambda tmp, cifar: _tree_with(tmp, cifar, "test_batch", pickle.dumps({b"data": b"x"})), False,
                 ["not a CIFAR-10 batch", "uint8 [N, 3072]"], id="wrong-batch-content"),
    pytest.param(lambda tmp, cifar: _tree_with(tmp, cifar, "test_batch", pickle.dumps(print)), False,
                 ["is corrupt", "refusing to load builtins.print"], id="pickle-that-runs-code"),
    pytest.param(lambda tmp, cifar: (tmp / "absent", tmp / "absent"), False,
                 ["download is off", ARCHIVE, "CIFAR10_DIR"], id="missing-directory"),
])
def test_cifar10_bad_input_is_a_clear_data_error(monkeypatch, tmp_path, cifar, prepare, own_md5, phrases):
    data_dir, culprit = prepare(tmp_path, cifar)
    if own_md5:  # get past the checksum, so that the archive itself is examined
        monkeypatch.setattr(cifar10, "CIFAR10_MD5", md5(culprit))
    with pytest.raises(DataError) as err:
        load_dataset("cifar10", data_dir, download=False)
    message = str(err.value)
    assert str(culprit) in message and all(p in message for p in phrases), message
    if culprit.name == ARCHIVE and not own_md5:  # a checksum error names the actual md5 next to the expected one
        assert md5(culprit) in message
    if culprit.name == ARCHIVE:  # extraction is all or nothing: no partial folder, no scratch folder
        assert [p.name for p in tmp_path.iterdir()] == [ARCHIVE]
