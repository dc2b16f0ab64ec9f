"""The upload page's browser mode in real headless Chromium: the served model file on onnxruntime-web, fed the pixels
the server would decode (cifar10_pipeline.web), agreeing with the server, offline, and saying so when onnxruntime-web
is not installed.

The in-page checks call the page's own module (``/web/runtime.mjs``'s ``classifyFiles``, what the switch runs), which
also returns each image's logits; the pixel echo model (logits = pixels / 64) turns logits back into the pixels the
browser decoded."""

from __future__ import annotations

import base64
import io
import re
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import onnxruntime as ort
import pytest
from PIL import Image

from cifar10_pipeline.contract.images import decode_image
from cifar10_pipeline.inference import browser
from cifar10_pipeline.inference.config import ServiceConfig
from tests.support.images import PHOTO_KINDS, encode, png, write_photos
from tests.support.net import predict
from tests.support.onnx_models import CIFAR10_LABELS, ECHO_SCALE, build_pixel_echo, write_model

pytestmark = pytest.mark.slow

SHAPE = (32, 32, 3)
MAX_PIXELS = ServiceConfig.max_pixels  # the service's default; these files are far below it
LOSSY = ("JPEG",)  # Pillow decodes these with libjpeg's scaled IDCT (draft mode), the browser at full size


def classify_in_page(page, files: list[tuple[str, bytes]]) -> dict:
    """``classifyFiles`` of the page's module on ``files`` (name, bytes): /predict's answer, plus logits."""
    return page.evaluate("""async (files) => {
        const { ServedModel, classifyFiles } = await import("/web/runtime.mjs");
        const info = await (await fetch("/info")).json();
        const model = await new ServedModel("/model.onnx").open(info.model_id);
        const bytes = (data) => Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
        const blobs = files.map(([name, data]) => new File([bytes(data)], name));
        return classifyFiles(model, blobs, info);
    }""", [[name, base64.b64encode(data).decode()] for name, data in files])


def onnxruntime_logits(model_path: Path, pixels: np.ndarray) -> np.ndarray:
    return ort.InferenceSession(str(model_path)).run(["logits"], {"image": pixels})[0]


def switch_on(page) -> str:
    page.click("#local")  # not check(): an unavailable mode turns itself off again
    page.wait_for_function("['ready', 'unavailable'].includes(document.querySelector('#local-status').dataset.state)",
                           timeout=60_000)
    return page.text_content("#local-status")


def shown(page) -> tuple[str, str]:
    page.wait_for_selector("#result[data-state=done], #result[data-state=error]", timeout=60_000)
    return page.text_content("#label"), page.text_content("#error")


def native_size_files(rng: np.random.Generator) -> list[tuple[str, bytes]]:
    """32x32 files of every lossless format and mode, with random pixels (a wrong pixel cannot hide)."""
    rgb = Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8))
    rgba = Image.fromarray(rng.integers(0, 256, (32, 32, 4), dtype=np.uint8), "RGBA")
    return [("rgb.png", encode(rgb, "PNG")), ("gray.png", encode(rgb.convert("L"), "PNG")),
            ("alpha.png", encode(rgba, "PNG")), ("palette.gif", encode(rgb.convert("P"), "GIF")),
            ("rgb.bmp", encode(rgb, "BMP")), ("lossless.webp", encode(rgba, "WEBP", lossless=True))]


def test_native_size_images_give_onnxruntimes_logits(page, serve_live, tmp_path):
    # the pixel echo answers the pixels themselves: equal logits mean equal pixels, decoded and fed alike
    model = write_model(tmp_path / "echo.onnx", build_pixel_echo(*SHAPE))
    page.goto(serve_live(model))
    files = native_size_files(np.random.default_rng(0))
    answer = classify_in_page(page, files)
    served = np.stack([decode_image(data, name, SHAPE, MAX_PIXELS) for name, data in files])
    expected = onnxruntime_logits(model, served)
    got = np.array([p["logits"] for p in answer["predictions"]], dtype=np.float32)
    assert got.shape == expected.shape and np.abs(got - expected).max() <= 1e-4
    assert [p["file"] for p in answer["predictions"]] == [name for name, _ in files]


def test_the_mean_colour_model_gives_onnxruntimes_logits_and_the_servers_answer(page, live_server, tmp_path):
    files = native_size_files(np.random.default_rng(1))
    answer = classify_in_page(page, files)
    expected = onnxruntime_logits(tmp_path / "model.onnx",
                                  np.stack([decode_image(data, name, SHAPE, MAX_PIXELS) for name, data in files]))
    assert np.abs(np.array([p["logits"] for p in answer["predictions"]]) - expected).max() <= 1e-4
    status, server = predict(live_server, files)
    assert status == 200 and answer["model_id"] == server["model_id"]
    for here, there in zip(answer["predictions"], server["predictions"]):
        assert here["label"] == there["label"] and abs(here["probability"] - there["probability"]) < 1e-5


def test_photos_of_every_kind_and_size_decode_to_the_servers_pixels(page, serve_live, tmp_path):
    # the photos training folders hold (tests.support.images): 40 to 300 pixels a side, every format and mode, EXIF
    # rotations; lossless files give the server's pixels exactly, JPEGs nearly (Pillow decodes them downscaled)
    paths = write_photos(tmp_path / "photos", {"test": len(PHOTO_KINDS)}, classes=("a",), seed=3)
    page.goto(serve_live(write_model(tmp_path / "echo.onnx", build_pixel_echo(*SHAPE))))
    files = [(path.name, path.read_bytes()) for path in paths]
    answer = classify_in_page(page, files)
    for (name, data), prediction, (_, fmt, mode, _) in zip(files, answer["predictions"], PHOTO_KINDS):
        pixels = np.rint(np.array(prediction["logits"][1:]) / ECHO_SCALE).reshape(SHAPE)
        difference = np.abs(pixels - decode_image(data, name, SHAPE, MAX_PIXELS))
        if fmt in LOSSY:
            assert difference.mean() < 4, (name, mode, difference.mean())
        else:
            assert difference.max() == 0, (name, fmt, mode, Image.open(io.BytesIO(data)).size)


def test_photos_of_other_sizes_get_the_servers_label(page, live_server, tmp_path):
    paths = write_photos(tmp_path / "photos", {"test": len(PHOTO_KINDS)}, classes=("red", "blue", "green"), seed=4)
    files = [(f"{path.parent.name}-{path.name}", path.read_bytes()) for path in paths]
    here, there = [], []
    for start in range(0, len(files), len(PHOTO_KINDS)):  # both take at most 16 files at a time
        chunk = files[start:start + len(PHOTO_KINDS)]
        here += [p["label"] for p in classify_in_page(page, chunk)["predictions"]]
        status, server = predict(live_server, chunk)
        assert status == 200
        there += [p["label"] for p in server["predictions"]]
    assert here == there and len(set(there)) == 3  # three colours, three answers: not one label for all


def test_the_switch_classifies_offline_in_this_browser(page, live_server):
    requests, blocked = [], []
    local = f"http://{urlsplit(live_server).netloc}"

    def guard(route):
        url = route.request.url
        if url.startswith(local + "/"):
            route.continue_()
        else:  # the network is out of reach: anything else is refused, and counted
            blocked.append(url)
            route.abort()

    page.route("**/*", guard)
    page.on("request", lambda request: requests.append((request.method, urlsplit(request.url).path)))
    page.reload()
    status = switch_on(page)
    assert "onnxruntime-web" in status and "runs here" in status
    colours = {"red.png": (200, 30, 60), "blue.png": (20, 20, 220), "green.png": (30, 200, 40)}
    uploads = [(name, png(colour, (50, 70))) for name, colour in colours.items()]
    page.set_input_files("#file", files=[{"name": n, "mimeType": "image/png", "buffer": b} for n, b in uploads])
    label, error = shown(page)
    server = predict(live_server, uploads)[1]["predictions"]
    assert error == "" and label == server[0]["label"]
    rows = page.locator("#list li")
    assert [rows.nth(i).locator(".label").text_content() for i in range(3)] == [p["label"] for p in server]
    assert page.locator("#bars .row").count() == len(CIFAR10_LABELS)
    assert page.text_content("#probability") == f"{100 * server[0]['probability']:.1f} %"
    assert ("POST", "/predict") not in requests and ("GET", "/model.onnx") in requests
    assert blocked == []  # nothing left 127.0.0.1
    assert all(path.startswith(("/web/", "/model.onnx", "/info", "/favicon")) or path == "/" for _, path in requests)


def test_the_switch_shows_the_browsers_decoding_error(page, live_server):
    switch_on(page)
    page.set_input_files("#file", files=[{"name": "notes.txt", "mimeType": "text/plain", "buffer": b"not an image"}])
    label, error = shown(page)
    assert label == "" and "'notes.txt' cannot be decoded by this browser" in error
    assert page.get_attribute("#result", "data-state") == "error"


def test_an_image_over_the_services_pixel_limit_is_refused_from_its_header_as_the_server_refuses_it(page, serve_live,
                                                                                                      tmp_path):
    url = serve_live(write_model(tmp_path / "model.onnx", seed=0), max_pixels=2000)
    page.goto(url)
    small, large = ("small.png", png(size=(40, 40))), ("large.png", png(size=(50, 70)))  # 1,600 and 3,500 pixels
    assert [p["file"] for p in classify_in_page(page, [small])["predictions"]] == ["small.png"]
    refused = "'large.png' is 50x70 = 3500 pixels, at most 2000 are accepted (decompression-bomb guard)"
    with pytest.raises(Exception, match=re.escape(refused)):
        classify_in_page(page, [small, large])
    status, server = predict(url, [large])
    assert status == 413 and server["error"] == refused


def test_more_files_than_the_service_takes_are_refused_as_the_server_refuses_them(page, serve_live, tmp_path):
    url = serve_live(write_model(tmp_path / "model.onnx", seed=0), max_files=2)
    page.goto(url)
    files = [(f"{i}.png", png()) for i in range(3)]
    assert len(classify_in_page(page, files[:2])["predictions"]) == 2
    refused = "3 files in one request, at most 2 accepted"
    with pytest.raises(Exception, match=re.escape(refused)):
        classify_in_page(page, files)
    status, server = predict(url, files)
    assert status == 413 and server["error"] == refused


def test_files_over_the_services_upload_limit_together_are_refused_before_decoding(page, serve_live, tmp_path):
    small = ("small.png", png(size=(8, 8)))
    limit = 3 * len(small[1])
    url = serve_live(write_model(tmp_path / "model.onnx", seed=0), max_upload_bytes=limit)
    page.goto(url)
    assert len(classify_in_page(page, [small] * 3)["predictions"]) == 3
    # the fourth file is not an image: the page refuses the count of bytes before it decodes anything
    refused = f"the files are {4 * len(small[1])} bytes together, at most {limit} bytes accepted"
    with pytest.raises(Exception, match=re.escape(refused)):
        classify_in_page(page, [small] * 3 + [("notes.png", small[1][:8] + b"x" * (len(small[1]) - 8))])
    status, server = predict(url, [small] * 4)
    assert status == 413 and server["error"].startswith("request body is ")


def test_the_switch_says_when_onnxruntime_web_is_not_installed(page, live_server, monkeypatch, tmp_path):
    # the service as installed without `make web`: its ort files are missing
    monkeypatch.setattr(browser, "WEB_FILES", {name: tmp_path / "missing" if name.startswith("ort/") else path
                                               for name, path in browser.WEB_FILES.items()})
    status = switch_on(page)
    assert page.get_attribute("#local-status", "data-state") == "unavailable"
    assert "browser mode is unavailable: onnxruntime-web is not installed" in status and "make web" in status
    assert not page.is_checked("#local")
    page.set_input_files("#file", files=[{"name": "red.png", "mimeType": "image/png", "buffer": png()}])
    label, error = shown(page)  # the page still classifies, on the server
    assert error == "" and label == predict(live_server, [("red.png", png())])[1]["predictions"][0]["label"]
