"""The framework-neutral data layer: CIFAR-10 (folder, archive, download), Fashion-MNIST, image folders, synthetic.

Everything runs offline on tiny files built here: a CIFAR-10 archive in the exact published format (10 random images
per batch), idx files, PNG folders, and a local HTTP server standing in for the CIFAR-10 host.
"""

import gzip
import hashlib
import io
import pickle
import shutil
import socket
import struct
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from training.datasets import DataError, Dataset, load_dataset, split_validation
from training.datasets import cifar10 as data
from training.datasets.cifar10 import CIFAR10_CLASSES, download_cifar10
from training.datasets.fashion_mnist import FASHION_MNIST_CLASSES
from training.datasets.synthetic import SYNTHETIC_CLASSES, make_synthetic

CIFAR_BATCHES = ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch")
PER_BATCH = 10  # images per generated CIFAR-10 batch
ARCHIVE = "cifar-10-python.tar.gz"


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def _cifar_rows_to_nhwc(rows: np.ndarray) -> np.ndarray:
    """Test oracle, written from the format spec: pixel (y, x) of channel c is byte c * 1024 + y * 32 + x."""
    y, x, c = np.meshgrid(np.arange(32), np.arange(32), np.arange(3), indexing="ij")
    return rows[:, c * 1024 + y * 32 + x]  # [N, 32, 32, 3]


def _expected_stats(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    flat = images.reshape(-1, images.shape[-1]).astype(np.float64)
    return flat.mean(axis=0), flat.std(axis=0)


def _assert_stats(ds: Dataset) -> None:
    mean, std = _expected_stats(ds.train_images)
    np.testing.assert_allclose(ds.mean, mean, rtol=1e-9)
    np.testing.assert_allclose(ds.std, std, rtol=1e-9)


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


def _assert_is_generated_cifar(ds: Dataset, cifar) -> None:
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
    _assert_stats(ds)


@pytest.fixture
def cifar_md5(monkeypatch, cifar):
    """Make the generated archive the one whose checksum load_dataset expects."""
    monkeypatch.setattr(data, "CIFAR10_MD5", cifar.md5)
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


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ------------------------------------------------------------------------------------------------------ CIFAR-10


def test_cifar10_reads_an_extracted_folder_exactly(cifar):
    _assert_is_generated_cifar(load_dataset("cifar10", cifar.root, download=False), cifar)


def test_cifar10_data_dir_defaults_to_the_env_var(monkeypatch, cifar):
    monkeypatch.setenv("CIFAR10_DIR", str(cifar.root))
    _assert_is_generated_cifar(load_dataset("cifar10", download=False), cifar)


def test_cifar10_verifies_and_extracts_an_archive(tmp_path, cifar, cifar_md5):
    shutil.copy(cifar.archive, tmp_path / ARCHIVE)
    _assert_is_generated_cifar(load_dataset("cifar10", tmp_path, download=False), cifar)
    # extracted in place, and no scratch folder left behind
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cifar-10-batches-py", ARCHIVE]


def test_cifar10_downloads_when_nothing_is_there(monkeypatch, tmp_path, cifar, cifar_md5, server):
    monkeypatch.setattr(data, "CIFAR10_URL", server.url)
    _assert_is_generated_cifar(load_dataset("cifar10", tmp_path / "new"), cifar)
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
    (lambda server: f"http://127.0.0.1:{_closed_port()}/x", "Connection refused"),
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


def _tar_gz(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, content in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
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
                 ["has md5", data.CIFAR10_MD5, "Delete it"], id="wrong-checksum"),
    pytest.param(lambda tmp, cifar: _archive(tmp, np.random.default_rng(0).bytes(4096)), True,
                 ["cannot be extracted", "corrupt, truncated", "Delete it"], id="random-bytes"),
    pytest.param(lambda tmp, cifar: _archive(tmp, cifar.archive.read_bytes()[: cifar.archive.stat().st_size // 2]),
                 True, ["cannot be extracted", "corrupt, truncated", "Delete it"], id="truncated"),
    pytest.param(lambda tmp, cifar: _archive(tmp, _tar_gz({"readme.txt": b"hi"})), True,
                 ["has no cifar-10-batches-py/", "not the CIFAR-10 archive"], id="no-batches-folder"),
    pytest.param(lambda tmp, cifar: _archive(tmp, _tar_gz({"../escape.txt": b"x"})), True,
                 ["cannot be extracted", "escape.txt"], id="unsafe-member"),
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
        monkeypatch.setattr(data, "CIFAR10_MD5", _md5(culprit))
    with pytest.raises(DataError) as err:
        load_dataset("cifar10", data_dir, download=False)
    message = str(err.value)
    assert str(culprit) in message and all(p in message for p in phrases), message
    if culprit.name == ARCHIVE and not own_md5:  # a checksum error names the actual md5 next to the expected one
        assert _md5(culprit) in message
    if culprit.name == ARCHIVE:  # extraction is all or nothing: no partial folder, no scratch folder
        assert [p.name for p in tmp_path.iterdir()] == [ARCHIVE]


# ------------------------------------------------------------------------------------------------- Fashion-MNIST

IDX_FILES = {  # file stem -> (split, what)
    "train-images-idx3-ubyte": ("train", "images"),
    "train-labels-idx1-ubyte": ("train", "labels"),
    "t10k-images-idx3-ubyte": ("test", "images"),
    "t10k-labels-idx1-ubyte": ("test", "labels"),
}


def _idx_bytes(array: np.ndarray, type_code: int = 0x08) -> bytes:
    """idx format: 0x00 0x00, a type code (0x08 = uint8), the number of dimensions, big-endian uint32 dims, data."""
    header = bytes([0, 0, type_code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def _write_idx(path: Path, content: bytes) -> None:
    path.write_bytes(gzip.compress(content) if path.suffix == ".gz" else content)


@pytest.fixture
def fashion(tmp_path):
    """Tiny Fashion-MNIST idx files (6 train, 4 test images of 28x28), gzipped; returns the arrays written."""
    rng = np.random.default_rng(7)
    arrays = {
        ("train", "images"): rng.integers(0, 256, size=(6, 28, 28), dtype=np.uint8),
        ("train", "labels"): rng.integers(0, 10, size=6).astype(np.uint8),
        ("test", "images"): rng.integers(0, 256, size=(4, 28, 28), dtype=np.uint8),
        ("test", "labels"): rng.integers(0, 10, size=4).astype(np.uint8),
    }
    for stem, key in IDX_FILES.items():
        _write_idx(tmp_path / f"{stem}.gz", _idx_bytes(arrays[key]))
    return SimpleNamespace(root=tmp_path, arrays=arrays)


@pytest.mark.parametrize("gzipped", [True, False], ids=["gz", "plain"])
def test_fashion_mnist_reads_idx_files_exactly(fashion, gzipped):
    if not gzipped:
        for stem in IDX_FILES:
            gz = fashion.root / f"{stem}.gz"
            (fashion.root / stem).write_bytes(gzip.decompress(gz.read_bytes()))
            gz.unlink()
    ds = load_dataset("fashion-mnist", fashion.root)
    assert ds.name == "fashion-mnist" and ds.classes == FASHION_MNIST_CLASSES and ds.image_shape == (28, 28, 1)
    np.testing.assert_array_equal(ds.train_images[..., 0], fashion.arrays["train", "images"])
    np.testing.assert_array_equal(ds.train_labels, fashion.arrays["train", "labels"])
    np.testing.assert_array_equal(ds.test_images[..., 0], fashion.arrays["test", "images"])
    np.testing.assert_array_equal(ds.test_labels, fashion.arrays["test", "labels"])
    assert ds.train_labels.dtype == np.int64
    _assert_stats(ds)


@pytest.mark.parametrize("stem, content, phrases", [
    ("t10k-labels-idx1-ubyte", None, ["is missing", "apt-get install dataset-fashion-mnist"]),
    ("train-images-idx3-ubyte", _idx_bytes(np.zeros(6)), ["magic number 0x00000801, expected 0x00000803"]),
    ("train-images-idx3-ubyte", _idx_bytes(np.zeros((6, 28, 28)), type_code=0x0D), ["magic number 0x00000d03"]),
    ("train-images-idx3-ubyte", _idx_bytes(np.zeros((6, 28, 28)))[:-10], ["truncated"]),
    ("train-labels-idx1-ubyte", _idx_bytes(np.zeros(5)), ["has 6 images but", "has 5 labels"]),
    ("t10k-labels-idx1-ubyte", _idx_bytes(np.full(4, 10)), ["labels from 10 to 10, expected 0..9"]),
], ids=["missing-file", "labels-magic-for-images", "float-type-code", "truncated", "count-mismatch", "bad-label"])
def test_fashion_mnist_bad_files_are_refused(fashion, stem, content, phrases):
    path = fashion.root / f"{stem}.gz"
    if content is None:
        path.unlink()
    else:
        _write_idx(path, content)
    with pytest.raises(DataError) as err:
        load_dataset("fashion-mnist", fashion.root)
    message = str(err.value)
    assert stem in message and all(p in message for p in phrases), message


def test_fashion_mnist_corrupt_gzip_is_refused(fashion):
    path = fashion.root / "train-labels-idx1-ubyte.gz"
    path.write_bytes(path.read_bytes()[:20])
    with pytest.raises(DataError, match="cannot be read"):
        load_dataset("fashion-mnist", fashion.root)


def test_fashion_mnist_missing_directory_suggests_the_package(tmp_path):
    with pytest.raises(DataError) as err:
        load_dataset("fashion-mnist", tmp_path / "absent")
    assert str(tmp_path / "absent") in str(err.value) and "apt-get install dataset-fashion-mnist" in str(err.value)


def test_fashion_mnist_from_the_debian_package():
    # CI installs dataset-fashion-mnist, so the real files must be there: no skip
    ds = load_dataset("fashion-mnist")
    assert ds.train_images.shape == (60000, 28, 28, 1) and ds.test_images.shape == (10000, 28, 28, 1)
    assert ds.train_images.dtype == np.uint8 and ds.train_labels.dtype == np.int64
    # the published set is balanced: 6000 train and 1000 test images per class
    assert np.bincount(ds.train_labels).tolist() == [6000] * 10
    assert np.bincount(ds.test_labels).tolist() == [1000] * 10
    # the widely quoted statistics 0.2860 / 0.3530 of the [0, 1]-scaled train set, in pixel units
    assert ds.mean[0] == pytest.approx(0.2860 * 255, abs=0.1) and ds.std[0] == pytest.approx(0.3530 * 255, abs=0.1)


# --------------------------------------------------------------------------------------------------- image folder


def _write_images(root: Path, images: dict[str, np.ndarray]) -> None:
    """Write each uint8 [H, W] (gray, mode L) or [H, W, 3] (RGB) array as a PNG at root / relative path."""
    for relative, array in images.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(array).save(path, format="PNG")


def _pixels(rng, channels: int, height: int = 4, width: int = 5) -> np.ndarray:
    shape = (height, width) if channels == 1 else (height, width, channels)
    return rng.integers(0, 256, size=shape, dtype=np.uint8)


@pytest.mark.parametrize("first, others, channels", [(3, 3, 3), (1, 1, 1), (1, 3, 3)],
                         ids=["rgb", "gray", "gray-among-rgb"])
def test_folder_reads_images_exactly(tmp_path, first, others, channels):
    rng = np.random.default_rng(3)
    images = {
        "train/dog/b.png": _pixels(rng, first),
        "train/dog/a.PNG": _pixels(rng, others),  # upper-case extension counts too
        "train/cat/x.png": _pixels(rng, others),
        "test/cat/y.png": _pixels(rng, others),
        "test/dog/z.png": _pixels(rng, others),
    }
    _write_images(tmp_path, images)
    (tmp_path / "train/cat/notes.txt").write_text("not an image: ignored")
    ds = load_dataset("folder", tmp_path)

    def expected(*names):  # gray [H, W] -> [H, W, 1], or 3 equal channels once any image is RGB
        return np.stack([images[n] if images[n].ndim == 3 else np.dstack([images[n]] * channels) for n in names])

    assert ds.classes == ("cat", "dog") and ds.image_shape == (4, 5, channels)
    # classes in sorted order, files sorted by name within a class
    np.testing.assert_array_equal(ds.train_images, expected("train/cat/x.png", "train/dog/a.PNG", "train/dog/b.png"))
    np.testing.assert_array_equal(ds.test_images, expected("test/cat/y.png", "test/dog/z.png"))
    assert ds.train_labels.tolist() == [0, 1, 1] and ds.test_labels.tolist() == [0, 1]
    _assert_stats(ds)


def _good_folder(root: Path) -> None:
    rng = np.random.default_rng(4)
    _write_images(root, {f"{split}/{c}/{i}.png": _pixels(rng, 3) for split in ("train", "test") for c in "ab"
                         for i in range(2)})


@pytest.mark.parametrize("spoil, culprit, phrases", [
    (lambda root: _write_images(root, {"train/b/1.png": np.zeros((6, 5, 3), np.uint8)}), "train/b/1.png",
     ["is 5x6 pixels", "train/a/0.png is 5x4", "resize"]),
    (lambda root: shutil.rmtree(root / "test"), "test", ["is not a folder", "train/<class>"]),
    (lambda root: shutil.rmtree(root / "test/b"), "test", ["has classes ['a']", "has ['a', 'b']"]),
    (lambda root: [p.unlink() for p in (root / "train/a").iterdir()], "train/a", ["holds no .png/.jpg/.jpeg"]),
    (lambda root: (root / "train/a/0.png").write_bytes(b"not a png"), "train/a/0.png", ["cannot be read"]),
    (lambda root: [shutil.rmtree(root / s / c) for s in ("train", "test") for c in "ab"], "train",
     ["has no class subfolders"]),
], ids=["mixed-sizes", "no-test-split", "class-sets-differ", "empty-class", "unreadable-image", "no-classes"])
def test_folder_bad_layout_is_refused(tmp_path, spoil, culprit, phrases):
    _good_folder(tmp_path)
    spoil(tmp_path)
    with pytest.raises(DataError) as err:
        load_dataset("folder", tmp_path)
    message = str(err.value)
    assert str(tmp_path / culprit) in message and all(p in message for p in phrases), message


def test_folder_needs_a_data_dir():
    with pytest.raises(DataError, match="needs data_dir"):
        load_dataset("folder")


# ------------------------------------------------------------------------------------------------------ synthetic


def test_synthetic_is_deterministic_per_seed():
    first, again, other = (make_synthetic(seed, n_train=200, n_test=50) for seed in (3, 3, 4))
    for field in ("train_images", "train_labels", "test_images", "test_labels"):
        np.testing.assert_array_equal(getattr(first, field), getattr(again, field))
    assert first.mean == again.mean
    assert not np.array_equal(first.train_images, other.train_images)


def test_synthetic_default_set():
    ds = load_dataset("synthetic", seed=0)
    assert ds.name == "synthetic" and ds.classes == SYNTHETIC_CLASSES and ds.num_classes == 10
    assert ds.train_images.shape == (8000, 32, 32, 3) and ds.test_images.shape == (2000, 32, 32, 3)
    assert ds.train_images.dtype == np.uint8 and ds.train_labels.dtype == np.int64
    assert np.bincount(ds.train_labels).tolist() == [800] * 10 and np.bincount(ds.test_labels).tolist() == [200] * 10
    assert all(120 < m < 135 for m in ds.mean) and all(60 < s < 90 for s in ds.std)  # random colours: mid-grey


def test_synthetic_images_each_show_one_contrasting_shape():
    images = make_synthetic(0, n_train=1000, n_test=10).train_images.astype(np.int16)
    # the shape covers less than half of each image, so the per-channel median is the background colour
    background = np.median(images.reshape(len(images), -1, 3), axis=1)
    # shape pixels differ by >= 64 levels in every channel; 40 is over 3 sigma of the pixel noise
    shape_fraction = (np.abs(images - background[:, None, None, :]).max(axis=-1) > 40).mean(axis=(1, 2))
    assert 0.03 < shape_fraction.min() and shape_fraction.max() < 0.45


# --------------------------------------------------------------------------------------------------- validation


@pytest.fixture
def numbered():
    """100 one-pixel images whose value is their index, in 4 classes of 40, 30, 20 and 10 images."""
    labels = np.repeat(np.arange(4), [40, 30, 20, 10])
    images = np.arange(100, dtype=np.uint8).reshape(100, 1, 1, 1)
    return Dataset("numbered", images, labels, images[:5], labels[:5], ("a", "b", "c", "d"), (0.0,), (1.0,))


def test_split_validation_holds_out_a_stratified_disjoint_part(numbered):
    split = split_validation(numbered, 0.2, seed=0)
    kept, held = split.train_images.ravel(), split.test_images.ravel()
    assert (len(kept), len(held)) == (80, 20)
    assert np.bincount(split.test_labels).tolist() == [8, 6, 4, 2]  # 20 % of each class
    assert set(kept).isdisjoint(held) and sorted({*kept, *held}) == list(range(100))
    assert (np.diff(kept) > 0).all() and (np.diff(held) > 0).all()  # both parts keep the original order
    # every image keeps its own label
    np.testing.assert_array_equal(split.train_labels, numbered.train_labels[kept])
    np.testing.assert_array_equal(split.test_labels, numbered.train_labels[held])
    assert split.name == "numbered" and split.classes == numbered.classes
    _assert_stats(split)


def test_split_validation_is_deterministic_per_seed(numbered):
    first, again, other = (split_validation(numbered, 0.2, seed) for seed in (5, 5, 6))
    np.testing.assert_array_equal(first.test_images, again.test_images)
    assert not np.array_equal(first.test_images, other.test_images)


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 1.5])
def test_split_validation_refuses_a_bad_fraction(numbered, fraction):
    with pytest.raises(DataError, match=f"got {fraction}"):
        split_validation(numbered, fraction, seed=0)


def test_split_validation_refuses_an_empty_part():
    images, labels = np.zeros((2, 1, 1, 1), np.uint8), np.array([0, 1])  # one image per class: nothing to spare
    one_each = Dataset("tiny", images, labels, images, labels, ("a", "b"), (0.0,), (1.0,))
    with pytest.raises(DataError, match="one part would be empty"):
        split_validation(one_each, 0.5, seed=0)


# ------------------------------------------------------------------------------------------------------- general


def test_unknown_dataset_lists_the_choices():
    with pytest.raises(DataError, match="unknown dataset 'cifar100'; choose one of cifar10, fashion-mnist"):
        load_dataset("cifar100")


def test_dataset_refuses_inconsistent_arrays():
    images = np.zeros((3, 2, 2, 1), np.uint8)
    with pytest.raises(ValueError, match="int64 \\[N\\] labels"):
        Dataset("bad", images, np.zeros(2, np.int64), images, np.zeros(3, np.int64), ("a",), (0.0,), (1.0,))
