"""GET /model.onnx: the bytes of the model answering now (the hot-swap holder's), its id as a strong ETag and 304 to
a client that holds it; GET /web/...: the browser mode's JavaScript and onnxruntime-web, or a clear 404."""

from __future__ import annotations

import gzip
from pathlib import Path

from cifar10_pipeline.inference import browser
from tests.support.api import sha256
from tests.support.onnx_models import write_model


def test_the_model_file_comes_with_its_id_as_a_strong_etag(client, model_path):
    response = client.get("/model.onnx")
    assert response.status_code == 200 and response.data == model_path.read_bytes()
    assert response.headers["ETag"] == f'"{sha256(model_path)}"'  # quoted, no W/: strong
    assert response.mimetype == "application/octet-stream"
    assert response.headers["Cache-Control"] == "no-cache"  # cached, but revalidated: a swap changes it
    assert client.get("/info").json["model_id"] == sha256(model_path)


def test_if_none_match_with_the_served_id_is_304_without_a_body(client, model_path):
    etag = client.get("/model.onnx").headers["ETag"]
    for header in (etag, f"W/{etag}", f'"other", {etag}', "*"):  # weak comparison, lists and * (RFC 9110)
        response = client.get("/model.onnx", headers={"If-None-Match": header})
        assert (response.status_code, response.data, response.headers["ETag"]) == (304, b"", etag), header
    stale = client.get("/model.onnx", headers={"If-None-Match": '"0123abcd"'})
    assert stale.status_code == 200 and stale.data == model_path.read_bytes()


def test_a_swap_changes_the_bytes_and_the_etag(make_app, model_path):
    app = make_app()
    client = app.test_client()
    old_etag = client.get("/model.onnx").headers["ETag"]
    write_model(model_path, seed=5)
    assert app.extensions["inference"].reload()
    response = client.get("/model.onnx", headers={"If-None-Match": old_etag})
    assert response.status_code == 200 and response.data == model_path.read_bytes()
    assert response.headers["ETag"] == f'"{sha256(model_path)}"' != old_etag


def test_the_file_in_use_is_served_not_the_file_on_disk(make_app, model_path):
    # a file written over the model but refused (or not yet picked up) is not what answers, so it is not served
    served = model_path.read_bytes()
    client = make_app().test_client()
    model_path.write_bytes(b"not a model")
    response = client.get("/model.onnx")
    assert response.data == served and response.headers["ETag"] == f'"{client.get("/info").json["model_id"]}"'


def test_no_model_is_503(make_app, tmp_path):
    response = make_app(model_path=tmp_path / "missing.onnx").test_client().get("/model.onnx")
    assert response.status_code == 503 and "no model is loaded" in response.json["error"]


def test_the_web_modules_are_javascript(client):
    for name in ("runtime.mjs", "pixels.mjs"):
        response = client.get(f"/web/{name}")
        assert response.status_code == 200 and response.mimetype == "text/javascript", name
        assert response.data == (Path(browser.web.__file__).parent / name).read_bytes()


def test_the_wasm_binary_is_sent_gzip_compressed_as_stored(client):
    response = client.get("/web/ort/ort-wasm-simd-threaded.wasm")
    assert response.status_code == 200 and response.mimetype == "application/wasm"
    assert response.headers["Content-Encoding"] == "gzip" and len(response.data) < 6_000_000  # 15 MB unpacked
    assert gzip.decompress(response.data)[:4] == b"\0asm"  # WebAssembly's magic number
    assert "Content-Encoding" not in client.get("/web/ort/ort.wasm.bundle.min.mjs").headers


def test_an_unknown_web_file_is_404_listing_what_is_served(client):
    for name in ("nope.js", "../__init__.py", "ort/ort.all.min.mjs"):
        response = client.get(f"/web/{name}")
        assert response.status_code == 404 and "runtime.mjs" in response.json["error"], name


def test_missing_onnxruntime_web_files_are_404_saying_how_to_install_them(client, monkeypatch, tmp_path):
    files = {**browser.WEB_FILES, "ort/VERSION": tmp_path / "VERSION"}  # as before `make web`
    monkeypatch.setattr(browser, "WEB_FILES", files)
    response = client.get("/web/ort/VERSION")
    assert response.status_code == 404
    assert "onnxruntime-web is not installed" in response.json["error"] and "make web" in response.json["error"]
