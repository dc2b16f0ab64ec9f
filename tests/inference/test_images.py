"""Decoding uploads through the service: every format and mode to the right colour at the model's own size,
animated GIFs, and files that cannot be decoded (bad, truncated, of another format, decompression bombs) refused
with a 4xx naming the file, never a 500. The decoder itself (EXIF orientation, downscaling while decoding) is tested in
tests/contract/test_images.py."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from tests.support.api import post_files
from tests.support.images import COLOUR, claiming, encode, png, png_claiming, solid
from tests.support.onnx_models import CIFAR10_LABELS, write_model
from tests.support.reference import all_probabilities, expected_probabilities


def test_the_test_colour_has_a_clear_winner():
    # the lossy-format cases below compare labels; they need a margin that JPEG noise cannot close
    top2 = np.sort(expected_probabilities(COLOUR))[-2:]
    assert top2[1] - top2[0] > 0.1


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


def test_animated_gif_uses_its_first_frame(client):
    frames = [solid(COLOUR), solid((10, 200, 10))]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100)
    prediction = post_files(client, [("anim.gif", data)], "?top_k=10").json["predictions"][0]
    np.testing.assert_allclose(all_probabilities(prediction), expected_probabilities(COLOUR), atol=1e-4)


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
    # the same guards for every format: just over the limit (the service's check), far over it (Pillow's)
    **{f"{fmt.lower()}-bomb-over-the-limit": (claiming(fmt, 6000, 5000), 413, "30000000 pixels, at most 24000000")
       for fmt in ("JPEG", "GIF", "WEBP")},
    "jpeg-bomb-far-over-the-limit": (claiming("JPEG", 65000, 65000), 413, "decompression bomb"),
    "gif-bomb-far-over-the-limit": (claiming("GIF", 65535, 65535), 413, "decompression bomb"),
    "webp-bomb-far-over-the-limit": (claiming("WEBP", 16383, 16383), 413, "decompression bomb"),
    "zero-width": (png_claiming(0, 10), 415, "header is cut short"),
}


@pytest.mark.parametrize("case", BAD_FILES)
def test_bad_files_get_a_4xx_saying_what_is_wrong(client, case):
    data, status, message = BAD_FILES[case]
    response = post_files(client, [(f"{case}.bin", data)])
    assert response.status_code == status, response.json
    assert response.is_json and message in response.json["error"]
    assert f"{case}.bin" in response.json["error"]  # names the offending file


def test_configured_pixel_limit_applies(make_app):
    client = make_app(max_pixels=1000).test_client()
    response = post_files(client, [("a.png", png(size=(40, 30)))])
    assert response.status_code == 413 and "40x30 = 1200 pixels, at most 1000" in response.json["error"]


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
