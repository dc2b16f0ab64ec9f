"""Fixtures of the CIFAR-10 loader tests. Everything runs offline: a CIFAR-10 archive in the exact published format
(10 random images per batch), and a local HTTP server standing in for the CIFAR-10 host. Tests patch the module
globals of ``training.datasets.cifar10`` (CIFAR10_MD5, CIFAR10_URL), which the loader reads at call time.
"""

from __future__ import annotations

import pickle
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import numpy as np
import pytest

from cifar10_pipeline.training.datasets import Dataset, cifar10
from cifar10_pipeline.training.datasets.cifar10 import CIFAR10_CLASSES
from tests.support.cifar_archive import ARCHIVE, CIFAR_BATCHES, PER_BATCH, md5, rows_to_nhwc


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
        md5=md5(archive),
        first_rows=rows["data_batch_1"],
        train_images=rows_to_nhwc(np.concatenate([rows[n] for n in train])),
        train_labels=np.array(sum((labels[n] for n in train), []), dtype=np.int64),
        test_images=rows_to_nhwc(rows["test_batch"]),
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
