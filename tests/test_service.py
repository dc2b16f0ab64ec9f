"""The inference service through Flask's test client: decoding, errors, top-k, metrics, hot swap, batching.

Every app is built by ``create_app`` around a tiny model from ``onnx_models`` whose answer is known in
numpy (a linear layer on the mean colour), so predictions are checked against ``reference_logits``.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import struct
import threading
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from inference.app import create_app
from inference.config import ServiceConfig
from inference.errors import ApiError
from inference.images import decode_image
from tests.support.onnx_models import CIFAR10_LABELS, reference_logits, write_model

COLOUR = (200, 30, 60)  # the test colour; its top class wins by a wide margin (checked in a test below)
WAIT_S = 30.0  # upper bound on waiting for the watcher; a healthy run needs a few polls of 0.02 s


# ---------------------------------------------------------------- helpers


def encode(im: Image.Image, fmt: str, **save_args) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **save_args)
    return buf.getvalue()


def solid(colour=COLOUR, size=(40, 30), mode="RGB") -> Image.Image:
    return Image.new(mode, size, colour)


def png(colour=COLOUR, size=(40, 30)) -> bytes:
    return encode(solid(colour, size), "PNG")


def softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def expected_probabilities(rgb, seed=0, shape=(32, 32, 3)) -> np.ndarray:
    """What the seed's model answers for an image of one colour ``rgb`` (gray for a 1-channel model)."""
    h, w, c = shape
    pixel = np.asarray(Image.new("RGB", (1, 1), tuple(rgb)).convert("RGB" if c == 3 else "L"), np.uint8)
    image = np.broadcast_to(pixel.reshape(1, 1, 1, c), (1, h, w, c))
    return softmax(reference_logits(image, seed))[0]


def all_probabilities(prediction: dict) -> np.ndarray:
    """The prediction's top_k turned back into one probability per label (needs top_k = all classes)."""
    by_label = {entry["label"]: entry["probability"] for entry in prediction["top_k"]}
    return np.array([by_label[label] for label in CIFAR10_LABELS])


def png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` pixels; there are no pixels behind it."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


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


def wait_for(condition, what: str):
    """Poll ``condition`` until it returns something truthy; fail naming ``what`` after WAIT_S."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if result := condition():
            return result
        time.sleep(0.02)
    pytest.fail(f"gave up after {WAIT_S} s waiting for {what}")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ---------------------------------------------------------------- fixtures


@pytest.fixture
def model_path(tmp_path) -> Path:
    return write_model(tmp_path / "model.onnx", seed=0)


@pytest.fixture
def make_app(model_path):
    """Build apps with config overrides; hot swapping is off unless asked. Closes their threads after."""
    apps = []

    def make(**overrides):
        config = ServiceConfig(**{"model_path": model_path, "reload_poll_s": 0.0, **overrides})
        app = create_app(config)
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.extensions["inference"].close()


@pytest.fixture
def client(make_app):
    return make_app().test_client()


def post_files(client, files: list[tuple[str, bytes]], query: str = "", field: str = "file"):
    data = {}
    for i, (name, content) in enumerate(files):
        data[f"{field}{i}"] = (io.BytesIO(content), name)
    return client.post(f"/predict{query}", data=data, content_type="multipart/form-data")


# ---------------------------------------------------------------- readiness, info, page


def test_health_ready_and_info_describe_the_loaded_model(client, model_path):
    assert client.get("/healthz").json == {"status": "alive"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json == {"ready": True, "model_id": sha256(model_path)}
    info = client.get("/info").json
    assert info["model_id"] == sha256(model_path)
    assert info["labels"] == CIFAR10_LABELS
    assert info["input"] == {"height": 32, "width": 32, "channels": 3}
    assert info["providers"]["active"][-1] == "CPUExecutionProvider"
    assert info["metadata"]["parity"]["golden"]["seed"] == 0
    assert info["self_test"]["compared_to_parity"] is True
    assert info["self_test"]["max_abs_diff"] <= info["self_test"]["atol"]


def test_the_test_colour_has_a_clear_winner():
    # the lossy-format cases below compare labels; they need a margin that JPEG noise cannot close
    top2 = np.sort(expected_probabilities(COLOUR))[-2:]
    assert top2[1] - top2[0] > 0.1


def test_index_page_is_self_contained(client):
    page = client.get("/")
    assert page.status_code == 200 and page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    assert 'id="file"' in html and 'id="label"' in html and 'fetch(`predict' in html
    assert "http://" not in html and "https://" not in html  # no CDN: works offline


# ---------------------------------------------------------------- predictions


def test_prediction_matches_the_reference_model(client, model_path):
    answer = post_files(client, [("red.png", png())], "?top_k=10").json
    expected = expected_probabilities(COLOUR)
    (prediction,) = answer["predictions"]
    assert answer["model_id"] == prediction["model_id"] == sha256(model_path)
    assert prediction["file"] == "red.png"
    assert prediction["label"] == CIFAR10_LABELS[int(expected.argmax())]
    assert prediction["probability"] == pytest.approx(expected.max(), abs=1e-5)
    np.testing.assert_allclose(all_probabilities(prediction), expected, atol=1e-5)


def test_raw_image_body_is_accepted(client):
    answer = client.post("/predict", data=png(), content_type="image/png").json
    assert answer["predictions"][0]["file"] == "body"
    assert answer["predictions"][0]["label"] == CIFAR10_LABELS[int(expected_probabilities(COLOUR).argmax())]


def transparent_palette() -> Image.Image:
    image = Image.new("P", (40, 30), 0)
    image.putpalette([*COLOUR] * 256)  # index 0 is the test colour, and it is transparent when saved
    return image


# case: (format, image, save arguments, the colour the model must see, lossy format?)
CASES = {
    "png-rgb": ("PNG", solid(), {}, COLOUR, False),
    "png-rgba-opaque": ("PNG", Image.new("RGBA", (40, 30), (*COLOUR, 255)), {}, COLOUR, False),
    "png-rgba-transparent": ("PNG", Image.new("RGBA", (40, 30), (*COLOUR, 0)), {}, (255, 255, 255), False),
    "png-rgba-half": ("PNG", Image.new("RGBA", (40, 30), (0, 0, 0, 128)), {}, (127, 127, 127), False),
    "png-palette": ("PNG", solid().convert("P", palette=Image.Palette.ADAPTIVE), {}, COLOUR, False),
    "png-palette-transparent": ("PNG", transparent_palette(), {"transparency": 0}, (255, 255, 255), False),
    "png-gray": ("PNG", solid(120, mode="L"), {}, (120, 120, 120), False),
    "png-gray-alpha": ("PNG", Image.new("LA", (40, 30), (120, 255)), {}, (120, 120, 120), False),
    "png-16bit": ("PNG", Image.fromarray(np.full((30, 40), 120 * 257, np.uint16)), {}, (120, 120, 120), False),
    "png-1bit": ("PNG", solid(1, mode="1"), {}, (255, 255, 255), False),
    "jpeg-rgb": ("JPEG", solid(), {}, COLOUR, True),
    "jpeg-gray": ("JPEG", solid(120, mode="L"), {}, (120, 120, 120), True),
    "jpeg-cmyk": ("JPEG", solid().convert("CMYK"), {}, COLOUR, True),
    "gif-palette": ("GIF", solid().convert("P", palette=Image.Palette.ADAPTIVE), {}, COLOUR, False),
    "gif-transparent": ("GIF", transparent_palette(), {"transparency": 0}, (255, 255, 255), False),
    "bmp-rgb": ("BMP", solid(), {}, COLOUR, False),
    "bmp-palette": ("BMP", solid().convert("P", palette=Image.Palette.ADAPTIVE), {}, COLOUR, False),
    "webp-rgb": ("WEBP", solid(), {}, COLOUR, True),
    "webp-rgba-transparent": ("WEBP", Image.new("RGBA", (40, 30), (*COLOUR, 0)), {"lossless": True}, (255, 255, 255), False),
}


@pytest.mark.parametrize("case", CASES)
def test_every_format_and_mode_decodes_to_the_right_colour(client, case):
    fmt, image, save_args, seen, lossy = CASES[case]
    response = post_files(client, [(f"{case}.{fmt.lower()}", encode(image, fmt, **save_args))], "?top_k=10")
    assert response.status_code == 200, response.json
    prediction = response.json["predictions"][0]
    expected = expected_probabilities(seen)
    assert prediction["label"] == CIFAR10_LABELS[int(expected.argmax())]
    np.testing.assert_allclose(all_probabilities(prediction), expected, atol=0.05 if lossy else 1e-4)


def test_gray_model_gets_gray_pixels_at_its_own_size(make_app, tmp_path):
    gray = write_model(tmp_path / "gray.onnx", seed=3, height=28, width=28, channels=1)
    client = make_app(model_path=gray).test_client()
    assert client.get("/info").json["input"] == {"height": 28, "width": 28, "channels": 1}
    prediction = post_files(client, [("c.png", png(size=(300, 200)))], "?top_k=10").json["predictions"][0]
    np.testing.assert_allclose(
        all_probabilities(prediction), expected_probabilities(COLOUR, seed=3, shape=(28, 28, 1)), atol=1e-4
    )


@pytest.mark.parametrize(
    "orientation, left_column, right_column",
    [(1, None, None), (3, None, None), (6, 0, 255), (8, 255, 0)],
)
@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_exif_orientation_is_applied(fmt, orientation, left_column, right_column):
    # stored: red on top, blue below; orientation 3 turns it upside down, 6 and 8 stand it on its side
    pixels = np.zeros((40, 80, 3), np.uint8)
    pixels[:20] = (255, 0, 0)
    pixels[20:] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = encode(Image.fromarray(pixels), fmt, exif=exif, **({"quality": 95} if fmt != "PNG" else {}))
    red = decode_image(data, "x", (8, 8, 3), 10**6)[:, :, 0].astype(int)
    if orientation == 1:
        assert red[0].min() > 200 and red[-1].max() < 50  # red stays on top
    elif orientation == 3:
        assert red[0].max() < 50 and red[-1].min() > 200  # red at the bottom
    else:
        assert abs(red[:, 0] - left_column).max() < 50 and abs(red[:, -1] - right_column).max() < 50


def test_large_jpeg_is_downscaled_while_decoding():
    big = encode(solid(size=(4000, 3000)), "JPEG", quality=90)
    out = decode_image(big, "big.jpg", (32, 32, 3), 24_000_000)
    assert out.shape == (32, 32, 3) and abs(out.reshape(-1, 3).mean(axis=0) - COLOUR).max() < 3


def test_animated_gif_uses_its_first_frame(client):
    frames = [solid(COLOUR), solid((10, 200, 10))]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100)
    prediction = post_files(client, [("anim.gif", data)], "?top_k=10").json["predictions"][0]
    np.testing.assert_allclose(all_probabilities(prediction), expected_probabilities(COLOUR), atol=1e-4)


def test_top_k(client):
    default = post_files(client, [("a.png", png())]).json["predictions"][0]["top_k"]
    assert len(default) == 3
    full = post_files(client, [("a.png", png())], "?top_k=10").json["predictions"][0]["top_k"]
    probabilities = [entry["probability"] for entry in full]
    assert probabilities == sorted(probabilities, reverse=True)
    assert sorted(entry["label"] for entry in full) == sorted(CIFAR10_LABELS)
    assert sum(probabilities) == pytest.approx(1.0, abs=1e-5)
    assert default == full[:3]
    one = post_files(client, [("a.png", png())], "?top_k=1").json["predictions"][0]
    assert one["top_k"] == full[:1] and one["label"] == full[0]["label"]


def test_several_files_in_one_request_keep_their_order(client):
    colours = [COLOUR, (10, 200, 10), (20, 20, 220), (250, 250, 250)]
    files = [(f"img{i}.png", png(c)) for i, c in enumerate(colours)]
    predictions = post_files(client, files, "?top_k=10").json["predictions"]
    assert [p["file"] for p in predictions] == [name for name, _ in files]
    for prediction, colour in zip(predictions, colours):
        np.testing.assert_allclose(all_probabilities(prediction), expected_probabilities(colour), atol=1e-4)


def test_files_under_any_field_name_and_repeated_fields(client):
    data = {"photo": [(io.BytesIO(png()), "a.png"), (io.BytesIO(png()), "b.png")], "x": (io.BytesIO(png()), "c.png")}
    answer = client.post("/predict", data=data, content_type="multipart/form-data").json
    assert sorted(p["file"] for p in answer["predictions"]) == ["a.png", "b.png", "c.png"]


# ---------------------------------------------------------------- refused input


def truncated(fmt: str) -> bytes:
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    data = encode(Image.fromarray(noise), fmt)
    return data[: len(data) // 2]


BAD_FILES = {
    # name: (bytes, status, a part of the error message)
    "not-an-image": (b"hello, this is text", 415, "is not a PNG, JPEG, GIF, BMP or WebP image"),
    "empty-file": (b"", 400, "is empty (0 bytes)"),
    "truncated-png": (truncated("PNG"), 400, "image file is truncated"),
    "truncated-jpeg": (truncated("JPEG"), 400, "image file is truncated"),
    "truncated-gif": (truncated("GIF"), 400, "image file is truncated"),
    "truncated-header": (png()[:20], 400, "has a broken header"),
    "tiff-is-not-accepted": (encode(solid(), "TIFF"), 415, "is not a PNG, JPEG, GIF, BMP or WebP image"),
    "bomb-over-the-limit": (png_claiming(6000, 5000), 413, "30000000 pixels, at most 24000000"),
    "bomb-far-over-the-limit": (png_claiming(40000, 40000), 413, "decompression bomb"),
    "absurd-dimensions": (png_claiming(1, 2**31 - 1), 413, "decompression bomb"),
    "zero-width": (png_claiming(0, 10), 415, "header is cut short"),
}


@pytest.mark.parametrize("case", BAD_FILES)
def test_bad_files_get_a_4xx_saying_what_is_wrong(client, case):
    data, status, message = BAD_FILES[case]
    response = post_files(client, [(f"{case}.bin", data)])
    assert response.status_code == status, response.json
    assert response.is_json and message in response.json["error"]
    assert f"{case}.bin" in response.json["error"]  # names the offending file


@pytest.mark.parametrize(
    "content_type, body, status, message",
    [
        ("text/plain", b"hello", 415, "Content-Type 'text/plain' is not accepted"),
        ("application/json", b'{"image": 1}', 415, "Content-Type 'application/json' is not accepted"),
        (None, png(), 415, "no Content-Type is not accepted"),
        ("image/png", b"", 400, "the request body is empty"),
        ("image/jpeg", b"\xff\xd8\xff garbage", 415, "'body' is not a PNG, JPEG, GIF, BMP or WebP image"),
        ("multipart/form-data; boundary=xyz", b"--xyz--\r\n", 400, "holds no file"),
    ],
)
def test_bad_bodies_get_a_4xx_saying_what_is_wrong(client, content_type, body, status, message):
    headers = {"Content-Type": content_type} if content_type else {}
    response = client.post("/predict", data=body, headers=headers)
    assert response.status_code == status and message in response.json["error"]


def test_form_without_file_is_refused(client):
    response = client.post("/predict", data={"name": "cat"}, content_type="multipart/form-data")
    assert response.status_code == 400 and "holds no file" in response.json["error"]


@pytest.mark.parametrize("top_k", ["abc", "0", "11", "-1", "2.5", ""])
def test_bad_top_k_is_refused(client, top_k):
    response = post_files(client, [("a.png", png())], f"?top_k={top_k}")
    assert response.status_code == 400
    assert response.json["error"] == f"top_k must be an integer from 1 to 10, got {top_k!r}"


def test_upload_over_the_limit_is_413(make_app):
    client = make_app(max_upload_bytes=5000).test_client()
    big = encode(Image.fromarray(np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)), "PNG")
    assert len(big) > 5000
    for response in (post_files(client, [("big.png", big)]), client.post("/predict", data=big, content_type="image/png")):
        assert response.status_code == 413 and "at most 5000 bytes accepted" in response.json["error"]
    assert post_files(client, [("small.png", png())]).status_code == 200  # the limit is not hit below it


@pytest.mark.parametrize("fields", [{f"f{i}": "x" for i in range(1200)}, {"text": "x" * 600_000}])
def test_multipart_parser_limits_are_413_saying_so(client, fields):
    response = client.post("/predict", data=fields, content_type="multipart/form-data")
    assert response.status_code == 413
    assert response.json["error"] == (
        "the multipart form has more than 1000 parts or a non-file field over 500000 bytes; "
        "send each image as a file field"
    )


def test_too_many_files_is_413(make_app):
    client = make_app(max_files=3).test_client()
    response = post_files(client, [(f"{i}.png", png()) for i in range(4)])
    assert response.status_code == 413 and response.json["error"] == "4 files in one request, at most 3 accepted"
    assert post_files(client, [(f"{i}.png", png()) for i in range(3)]).status_code == 200


def test_configured_pixel_limit_applies(make_app):
    client = make_app(max_pixels=1000).test_client()
    response = post_files(client, [("a.png", png(size=(40, 30)))])
    assert response.status_code == 413 and "40x30 = 1200 pixels, at most 1000" in response.json["error"]


def test_unknown_route_and_method_answer_json(client):
    assert client.get("/nope").status_code == 404 and "error" in client.get("/nope").json
    response = client.get("/predict")
    assert response.status_code == 405 and "Method Not Allowed" in response.json["error"]


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF", "BMP", "WEBP"])
def test_corrupted_files_never_cause_a_500(client, fmt):
    rng = np.random.default_rng(7)
    good = encode(Image.fromarray(rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)), fmt)
    statuses = set()
    for _ in range(40):
        data = bytearray(good)
        for position in rng.integers(0, len(data), size=rng.integers(1, 8)):
            data[position] = rng.integers(0, 256)
        response = post_files(client, [("fuzz", bytes(data[: rng.integers(1, len(data) + 1)]))])
        statuses.add(response.status_code)
        assert response.status_code == 200 or (400 <= response.status_code < 500 and response.json["error"])
    assert statuses - {200}  # some of the mutations were refused, so the refusal path ran
    assert post_files(client, [("good", good)]).status_code == 200


# ---------------------------------------------------------------- metrics


def test_metrics_count_requests_latency_batches_and_model(client, model_path):
    post_files(client, [("a.png", png()), ("b.png", png())])
    post_files(client, [("a.png", png())])
    client.post("/predict", data=b"x", content_type="text/plain")
    response = client.get("/metrics")
    assert response.mimetype == "text/plain" and "version=0.0.4" in response.content_type
    m = parse_metrics(response.get_data(as_text=True))
    assert m['inference_requests_total{endpoint="/predict",status="200"}'] == 2
    assert m['inference_requests_total{endpoint="/predict",status="415"}'] == 1
    assert m['inference_request_duration_seconds_count{endpoint="/predict"}'] == 3
    assert m['inference_request_duration_seconds_bucket{endpoint="/predict",le="+Inf"}'] == 3
    assert m['inference_batch_size_sum'] == 3  # images run through the model
    assert m["inference_ready"] == 1
    assert m['inference_model_loads_total{result="ok"}'] == 1
    (info,) = [k for k in m if k.startswith("inference_model_info")]
    assert f'model_id="{sha256(model_path)}"' in info and 'framework="torch"' in info and m[info] == 1


# ---------------------------------------------------------------- batching


def concurrent_posts(client_factory, n: int) -> list:
    """``n`` requests released at once by a barrier, each from its own thread and client."""
    barrier = threading.Barrier(n)
    responses = [None] * n

    def one(i):
        client = client_factory()
        barrier.wait()
        responses[i] = post_files(client, [(f"{i}.png", png())])

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return responses


def test_concurrent_requests_are_batched(make_app):
    # the first image waits up to 500 ms for others: long enough that 8 requests released together meet
    app = make_app(batch_max_size=32, batch_max_wait_ms=500.0)
    responses = concurrent_posts(app.test_client, 8)
    assert [r.status_code for r in responses] == [200] * 8
    m = parse_metrics(app.test_client().get("/metrics").get_data(as_text=True))
    assert m["inference_batch_size_sum"] == 8
    assert m['inference_batch_size_bucket{le="1"}'] < m["inference_batch_size_count"]  # a batch of 2+ ran
    labels = {r.json["predictions"][0]["label"] for r in responses}
    assert labels == {CIFAR10_LABELS[int(expected_probabilities(COLOUR).argmax())]}


def test_batches_are_bounded(make_app):
    app = make_app(batch_max_size=3, batch_max_wait_ms=500.0)
    assert all(r.status_code == 200 for r in concurrent_posts(app.test_client, 8))
    m = parse_metrics(app.test_client().get("/metrics").get_data(as_text=True))
    assert m["inference_batch_size_sum"] == 8 and m['inference_batch_size_bucket{le="4"}'] == m["inference_batch_size_count"]
    assert m["inference_batch_size_count"] >= 3  # 8 images in batches of at most 3


def test_batching_off_runs_one_call_per_request(make_app):
    app = make_app(batch_max_size=1)
    assert all(r.status_code == 200 for r in concurrent_posts(app.test_client, 6))
    m = parse_metrics(app.test_client().get("/metrics").get_data(as_text=True))
    assert m['inference_batch_size_bucket{le="1"}'] == m["inference_batch_size_count"] == 6


# ---------------------------------------------------------------- readiness and hot swap


def model_id_served(client) -> str | None:
    response = client.get("/readyz")
    return response.json.get("model_id") if response.status_code == 200 else None


def test_not_ready_without_a_model_then_ready_when_it_appears(make_app, tmp_path):
    path = tmp_path / "later.onnx"
    client = make_app(model_path=path, reload_poll_s=0.02).test_client()
    response = client.get("/readyz")
    assert response.status_code == 503 and "no such file" in response.json["error"].lower()
    predict = post_files(client, [("a.png", png())])
    assert predict.status_code == 503 and "no model is loaded" in predict.json["error"]
    assert client.get("/info").status_code == 503
    assert parse_metrics(client.get("/metrics").get_data(as_text=True))["inference_ready"] == 0
    write_model(path, seed=1)
    assert wait_for(lambda: model_id_served(client), "the model to appear") == sha256(path)
    assert post_files(client, [("a.png", png())]).status_code == 200


def test_a_model_failing_its_golden_self_test_is_never_ready(make_app, tmp_path):
    path = write_model(tmp_path / "wrong.onnx", golden={"seed": 0, "batch": 2, "logits": [[0.0] * 10] * 2})
    response = make_app(model_path=path).test_client().get("/readyz")
    assert response.status_code == 503
    assert "golden self-test" in response.json["error"] and "differ from the parity report" in response.json["error"]


def test_a_model_without_golden_logits_still_gets_the_shape_and_finite_check(make_app, tmp_path):
    path = write_model(tmp_path / "plain.onnx", golden={})
    info = make_app(model_path=path).test_client().get("/info").json
    assert info["self_test"] == {"seed": 0, "batch": 2, "compared_to_parity": False}


def test_hot_swap_to_a_good_model(make_app, model_path, tmp_path):
    client = make_app(reload_poll_s=0.02).test_client()
    old = sha256(model_path)
    assert model_id_served(client) == old
    # a different input size and channel count, as when a TensorFlow-trained file replaces a PyTorch one
    write_model(model_path, seed=5, height=28, width=28, channels=1, framework="tensorflow")
    new = sha256(model_path)
    assert wait_for(lambda: model_id_served(client) == new, "the swap")
    answer = post_files(client, [("a.png", png())], "?top_k=10").json
    assert answer["model_id"] == new
    np.testing.assert_allclose(
        all_probabilities(answer["predictions"][0]), expected_probabilities(COLOUR, 5, (28, 28, 1)), atol=1e-4
    )
    info = client.get("/info").json
    assert info["metadata"]["framework"] == "tensorflow" and info["input"]["channels"] == 1


BROKEN_MODELS = {
    "garbage-bytes": (lambda path: path.write_bytes(b"not an onnx file"), "onnxruntime cannot load it"),
    "half-written": (lambda path: path.write_bytes(path.read_bytes()[:300]), "onnxruntime cannot load it"),
    "breaks-the-contract": (lambda path: write_model(path, seed=2, input_name="pixels"), "inputs are ['pixels']"),
    "fails-the-self-test": (
        lambda path: write_model(path, seed=2, golden={"seed": 0, "batch": 2, "logits": [[9.0] * 10] * 2}),
        "golden logits differ",
    ),
}


@pytest.mark.parametrize("case", BROKEN_MODELS)
def test_hot_swap_to_a_broken_model_is_refused_and_the_old_one_keeps_serving(make_app, model_path, case):
    break_it, message = BROKEN_MODELS[case]
    app = make_app(reload_poll_s=0.02)
    client = app.test_client()
    old = sha256(model_path)
    break_it(model_path)

    def refused():
        return parse_metrics(client.get("/metrics").get_data(as_text=True))['inference_model_loads_total{result="refused"}']

    wait_for(refused, "the broken file to be refused")
    assert model_id_served(client) == old
    answer = post_files(client, [("a.png", png())])
    assert answer.status_code == 200 and answer.json["model_id"] == old
    assert message in client.get("/info").json["last_refused"]
    write_model(model_path, seed=4)  # a good file after a broken one is picked up again
    assert wait_for(lambda: model_id_served(client) == sha256(model_path), "recovery")


def test_no_request_fails_while_models_are_swapped_under_load(make_app, model_path):
    app = make_app(reload_poll_s=0.02, batch_max_wait_ms=1.0)
    stop = threading.Event()
    results: list[tuple[int, str | None]] = []
    lock = threading.Lock()

    def hammer():
        client = app.test_client()
        while not stop.is_set():
            response = post_files(client, [("a.png", png())])
            with lock:
                results.append((response.status_code, (response.json or {}).get("model_id")))

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for t in threads:
        t.start()
    client = app.test_client()
    served = [sha256(model_path)]
    try:
        for seed, size in ((1, 32), (2, 28), (3, 32)):  # each swap also changes the input size
            write_model(model_path, seed=seed, height=size, width=size)
            served.append(sha256(model_path))
            wait_for(lambda: model_id_served(client) == served[-1], f"swap to seed {seed}")
            count = len(results)
            wait_for(lambda: len(results) > count + 4, "requests on the new model")
        model_path.write_bytes(b"broken")
        wait_for(lambda: client.get("/info").json["last_refused"], "the broken file to be refused")
        count = len(results)
        wait_for(lambda: len(results) > count + 4, "requests after the refusal")
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert {status for status, _ in results} == {200}
    assert {model_id for _, model_id in results} <= set(served)
    assert results[-1][1] == served[-1]  # the last good model is still serving after the broken file


# ---------------------------------------------------------------- configuration


def test_config_from_environment():
    config = ServiceConfig.from_env(
        {
            "INFERENCE_MODEL_PATH": "/models/x.onnx",
            "INFERENCE_MAX_FILES": "4",
            "INFERENCE_BATCH_MAX_WAIT_MS": "0.5",
            "INFERENCE_PROVIDERS": "CUDAExecutionProvider, CPUExecutionProvider",
            "INFERENCE_MAX_PIXELS": "",  # empty: the default
            "INFERENCE_BATCH_WORKERS": "3",
        }
    )
    assert config.model_path == Path("/models/x.onnx") and config.max_files == 4 and config.batch_workers == 3
    assert config.batch_max_wait_ms == 0.5 and config.max_pixels == ServiceConfig.max_pixels
    assert config.providers == ("CUDAExecutionProvider", "CPUExecutionProvider")
    assert ServiceConfig.from_env({}).batch_workers == len(os.sched_getaffinity(0))  # default: one per CPU


@pytest.mark.parametrize(
    "env, message",
    [
        ({"INFERENCE_MAX_FILES": "many"}, "INFERENCE_MAX_FILES='many' is not a valid int"),
        ({"INFERENCE_MAX_UPLOAD_BYTES": "0"}, "max_upload_bytes must be >= 1, got 0"),
        ({"INFERENCE_RELOAD_POLL_S": "-1"}, "reload_poll_s must be >= 0, got -1.0"),
        ({"INFERENCE_BATCH_WORKERS": "0"}, "batch_workers must be >= 1, got 0"),
    ],
)
def test_bad_config_is_refused_naming_the_value(env, message):
    with pytest.raises(ValueError) as e:
        ServiceConfig.from_env(env)
    assert message in str(e.value)


def test_unavailable_provider_is_refused_at_start(model_path):
    with pytest.raises(ValueError, match=r"providers \['NoSuchExecutionProvider'\] are not in this onnxruntime"):
        create_app(ServiceConfig(model_path=model_path, providers=("NoSuchExecutionProvider",)))


def test_api_error_carries_its_status():
    e = ApiError(418, "short and stout")
    assert (e.status, e.message, str(e)) == (418, "short and stout", "short and stout")


# ---------------------------------------------------------------- the server's command line


@pytest.mark.parametrize("env, args, message", [
    ({"INFERENCE_BATCH_MAX_SIZE": "many"}, [], "INFERENCE_BATCH_MAX_SIZE='many' is not a valid int"),
    ({"INFERENCE_MAX_FILES": "0"}, [], "max_files must be >= 1, got 0"),
    ({"SERVER_THREADS": "two"}, [], "SERVER_THREADS='two' is not an integer"),
    ({"PORT": "http"}, [], "PORT='http' is not an integer"),
    ({}, ["--port", "70000"], "--port must be in 1..65535, got 70000"),
    ({}, ["--threads", "0"], "--threads must be >= 1, got 0"),
    ({}, ["--workers", "2"], "unrecognized arguments: --workers 2"),
])
def test_server_cli_refuses_bad_settings_with_exit_2(monkeypatch, capsys, env, args, message):
    from inference import server

    for name, value in env.items():
        monkeypatch.setenv(name, value)
    try:
        code = server.main(args)
    except SystemExit as e:  # argparse's errors
        code = e.code
    err = capsys.readouterr().err
    assert code == 2 and message in err, (code, err)


def test_server_threads_default_to_the_cpus_or_the_batch_size():
    from inference.server import default_threads

    cpus = len(os.sched_getaffinity(0))
    assert default_threads(ServiceConfig()) == cpus  # batching off: more threads only contend for the GIL
    assert default_threads(ServiceConfig(batch_max_size=32)) == max(cpus, 32)  # room for a full batch
