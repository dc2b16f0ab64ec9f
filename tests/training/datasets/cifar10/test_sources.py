"""CIFAR-10 from each place it may be: an extracted folder, the folder $CIFAR10_DIR names, a checksum-verified
archive, a download (verified, cached, and refused or failing with a message that says where to put the archive).
"""

from __future__ import annotations

import shutil

import pytest

from cifar10_pipeline.training.datasets import DataError, cifar10, load_dataset
from cifar10_pipeline.training.datasets.cifar10 import download_cifar10
from harness.server import free_port
from tests.support.cifar_archive import ARCHIVE


def test_cifar10_reads_an_extracted_folder_exactly(cifar, assert_is_generated_cifar):
    assert_is_generated_cifar(load_dataset("cifar10", cifar.root, download=False))


def test_cifar10_data_dir_defaults_to_the_env_var(monkeypatch, cifar, assert_is_generated_cifar):
    monkeypatch.setenv("CIFAR10_DIR", str(cifar.root))
    assert_is_generated_cifar(load_dataset("cifar10", download=False))


def test_cifar10_verifies_and_extracts_an_archive(tmp_path, cifar, cifar_md5, assert_is_generated_cifar):
    shutil.copy(cifar.archive, tmp_path / ARCHIVE)
    assert_is_generated_cifar(load_dataset("cifar10", tmp_path, download=False))
    # extracted in place, and no scratch folder left behind
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cifar-10-batches-py", ARCHIVE]


def test_cifar10_downloads_when_nothing_is_there(monkeypatch, tmp_path, cifar, cifar_md5, server,
                                                 assert_is_generated_cifar):
    monkeypatch.delenv("CIFAR10_URL", raising=False)  # a mirror from the environment would win over the global
    monkeypatch.setattr(cifar10, "CIFAR10_URL", server.url)
    assert_is_generated_cifar(load_dataset("cifar10", tmp_path / "new"))
    assert server.requests == [f"/{ARCHIVE}"]


def test_download_verifies_and_caches(tmp_path, cifar, server):
    archive = download_cifar10(tmp_path, server.url, cifar.md5)
    assert archive == tmp_path / ARCHIVE
    assert archive.read_bytes() == cifar.archive.read_bytes()
    assert download_cifar10(tmp_path, server.url, cifar.md5) == archive
    assert len(server.requests) == 1  # the second call found the verified archive and stayed offline
    assert [p.name for p in tmp_path.iterdir()] == [ARCHIVE]  # no temporary file left


def test_download_refuses_a_wrong_checksum(tmp_path, cifar, server):
    wrong = "0" * 32
    with pytest.raises(DataError) as err:
        download_cifar10(tmp_path, server.url, wrong)
    assert all(part in str(err.value) for part in (server.url, wrong, cifar.md5, "discarded"))
    assert list(tmp_path.iterdir()) == []  # nothing under the final name, no partial file either


@pytest.mark.parametrize("url, reason", [
    (lambda server: f"http://127.0.0.1:{free_port()}/x", "Connection refused"),  # free: nothing listens there
    (lambda server: f"{server.base}/missing.tar.gz", "HTTP Error 404"),
    (lambda server: f"{server.base}/cut.tar.gz", "connection was cut"),
], ids=["closed-port", "http-404", "cut-connection"])
def test_download_failure_says_where_to_put_the_archive(tmp_path, cifar, server, url, reason):
    url = url(server)
    with pytest.raises(DataError) as err:
        download_cifar10(tmp_path, url, cifar.md5)
    message = str(err.value)
    assert all(part in message for part in (f"could not download CIFAR-10 from {url}", reason, str(tmp_path / ARCHIVE),
                                            "CIFAR10_DIR")), message
    assert list(tmp_path.iterdir()) == []  # a failed download leaves nothing, not even a partial file
