"""CIFAR-10: an extracted folder, a checksum-verified archive, a download, and bad input as clear DataErrors.

Everything runs offline: a CIFAR-10 archive in the exact published format (10 random images per batch), and a
local HTTP server standing in for the CIFAR-10 host. Tests patch the module globals of ``training.datasets.cifar10``
(CIFAR10_MD5, CIFAR10_URL), which the loader reads at call time.
"""

import hashlib
import io
import pickle
import shutil
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from cifar10_pipeline.training.datasets import DataError, Dataset, cifar10, load_dataset
from cifar10_pipeline.training.datasets.cifar10 import CIFAR10_CLASSES, download_cifar10
from harness.server import free_port

CIFAR_BATCHES = ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch")
PER_BATCH = 10  # images per generated CIFAR-10 batch
ARCHIVE = "cifar-10-python.tar.gz"


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def _cifar_rows_to_nhwc(rows: np.ndarray) -> np.ndarray:
    """Test oracle, written from the format spec: pixel (y, x) of channel c is byte c * 1024 + y * 32 + x."""
    y, x, c = np.meshgrid(np.arange(32), np.arange(32), np.arange(3), indexing="ij")
    return rows[:, c * 1024 + y * 32 + x]  # [N, 32, 32, 3]


@pytest.fixture(scope="module")
def cifar(tmp_path_factory):
    """A CIFAR-10 tree and its .tar.gz in the published layout: pickled dicts with bytes keys, uint8 [N, 3072] rows."""
    root = tmp_path_factory.mktemp("cifar-source")
    folder = root / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(1234)
    rows, labels = {}, {}
    for name in CIFAR_BATCHES:
        rows[name] = rng.integers(0, 256, size=(PER_BATCH, 3072), dtype=np.uint8)
        labels[name] = rng.integers(0, 10, size=PER_BATCH).tolist()  # a list of ints, as in the real files
        batch = {
            b"batch_label": name.encode(),
            b"labels": labels[name],
            b"data": rows[name],
            b"filenames": [f"img_{i}.png".encode() for i in range(PER_BATCH)],
        }
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))  # protocol 2, like the Python 2 originals
    meta = {b"label_names": [c.encode() for c in CIFAR10_CLASSES], b"num_cases_per_batch": PER_BATCH, b"num_vis": 3072}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))

    archive = root / ARCHIVE
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname="cifar-10-batches-py")
    train = CIFAR_BATCHES[:5]
    return SimpleNamespace(
        root=root,
        archive=archive,
        md5=_md5(archive),
        first_rows=rows["data_batch_1"],
        train_images=_cifar_rows_to_nhwc(np.concatenate([rows[n] for n in train])),
        train_labels=np.array(sum((labels[n] for n in train), []), dtype=np.int64),
        test_images=_cifar_rows_to_nhwc(rows["test_batch"]),
        test_labels=np.array(labels["test_batch"], dtype=np.int64),
    )


@pytest.fixture
def assert_is_generated_cifar(cifar, assert_stats):
    """A check that a Dataset holds exactly the generated CIFAR-10 images and labels."""

    def check(ds: Dataset) -> None:
        assert ds.name == "cifar10" and ds.classes == CIFAR10_CLASSES
        assert ds.train_images.dtype == np.uint8 and ds.train_labels.dtype == np.int64
        assert ds.train_images.shape == (5 * PER_BATCH, 32, 32, 3) and ds.test_images.shape == (PER_BATCH, 32, 32, 3)
        # the first pixel's R, G, B come from the first byte of each 1024-byte plane
        rows = cifar.first_rows
        assert ds.train_images[0, 0, 0].tolist() == [rows[0, 0], rows[0, 1024], rows[0, 2048]]
        np.testing.assert_array_equal(ds.train_images, cifar.train_images)
        np.testing.assert_array_equal(ds.train_labels, cifar.train_labels)
        np.testing.assert_array_equal(ds.test_images, cifar.test_images)
        np.testing.assert_array_equal(ds.test_labels, cifar.test_labels)
        assert_stats(ds)

    return check


@pytest.fixture
def cifar_md5(monkeypatch, cifar):
    """Make the generated archive the one whose checksum load_dataset expects."""
    monkeypatch.setattr(cifar10, "CIFAR10_MD5", cifar.md5)
    return cifar.md5


@pytest.fixture
def server(monkeypatch, cifar):
    """A local HTTP server standing in for the CIFAR-10 host; records the paths it is asked for.

    /cifar-10-python.tar.gz: the generated archive; /cut.tar.gz: announces the whole archive, sends half, hangs up;
    anything else: 404.
    """
    body = cifar.archive.read_bytes()
    sent = {f"/{ARCHIVE}": body, "/cut.tar.gz": body[: len(body) // 2]}
    requests: list[str] = []

    class Handler(BaseHTTPRequestHandler):  # HTTP/1.0: the connection closes after each response
        def do_GET(self):
            requests.append(self.path)
            if self.path not in sent:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(sent[self.path])

        def log_message(self, *args):  # keep the test output clean
            pass

    # a CI proxy from the environment must not intercept requests to the local server
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{httpd.server_port}"
    yield SimpleNamespace(base=base, url=f"{base}/{ARCHIVE}", requests=requests)
    httpd.shutdown()
    httpd.server_close()
    thread.join()


# ------------------------------------------------------------------------------------ folder, archive, download


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


# ---- bad CIFAR-10 inputs: each builder fills tmp_path and returns (data_dir, the path the error must name)

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
        monkeypatch.setattr(cifar10, "CIFAR10_MD5", _md5(culprit))
    with pytest.raises(DataError) as err:
        load_dataset("cifar10", data_dir, download=False)
    message = str(err.value)
    assert str(culprit) in message and all(p in message for p in phrases), message
    if culprit.name == ARCHIVE and not own_md5:  # a checksum error names the actual md5 next to the expected one
        assert _md5(culprit) in message
    if culprit.name == ARCHIVE:  # extraction is all or nothing: no partial folder, no scratch folder
        assert [p.name for p in tmp_path.iterdir()] == [ARCHIVE]
