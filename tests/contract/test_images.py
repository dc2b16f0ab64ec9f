"""The one decoder (``contract.images``): EXIF orientation, downscaling while decoding, what counts as gray, the
resize of arrays, and every refusal as an ImageError with its HTTP status."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from cifar10_pipeline.contract.images import GRAY_MODES, ImageError, decode_image, open_image, resize_pixels
from tests.support.images import COLOUR, PHOTO_KINDS, encode, photo, png, png_claiming, red_over_blue, solid


@pytest.mark.parametrize(
    "orientation, left_column, right_column",
    [(1, None, None), (3, None, None), (6, 0, 255), (8, 255, 0)],
)
@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_exif_orientation_is_applied(fmt, orientation, left_column, right_column):
    red = decode_image(red_over_blue(fmt, orientation), "x", (8, 8, 3), 10**6)[:, :, 0].astype(int)
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


@pytest.mark.parametrize("suffix, fmt, mode", sorted({kind[:3] for kind in PHOTO_KINDS}))
def test_gray_modes_lose_nothing_in_one_channel(suffix, fmt, mode):
    # the folder data set trains a gray model only when every image's mode is in GRAY_MODES: for those the RGB
    # decoding must be three copies of the gray one, and for the others (colour photos here) it must not
    data = encode(photo(np.random.default_rng(0), (90, 70), mode), fmt)
    rgb = decode_image(data, suffix, (24, 24, 3), 10**6).astype(int)
    gray = decode_image(data, suffix, (24, 24, 1), 10**6).astype(int)
    assert (open_image(data, suffix, 10**6).mode in GRAY_MODES) == (mode in ("1", "L", "LA", "I;16"))
    if mode in GRAY_MODES:
        assert (rgb == gray).all()
    else:
        assert (rgb != rgb[..., :1]).any()


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("size", [(24, 24), (13, 29), (40, 40)])
def test_resize_pixels_is_what_decoding_a_png_of_them_gives(channels, size):
    pixels = np.random.default_rng(1).integers(0, 256, (24, 24, channels), dtype=np.uint8)
    shape = (*size, channels)
    upload = encode(Image.fromarray(pixels[..., 0] if channels == 1 else pixels), "PNG")
    np.testing.assert_array_equal(resize_pixels(pixels, shape), decode_image(upload, "p.png", shape, 10**6))
    if size == (24, 24):
        np.testing.assert_array_equal(resize_pixels(pixels, shape), pixels)


@pytest.mark.parametrize("data, status, phrase", [
    (b"", 400, "is empty (0 bytes)"),
    (b"hello, this is text", 415, "is not a PNG, JPEG, GIF, BMP or WebP image"),
    (encode(solid(), "TIFF"), 415, "is not a PNG, JPEG, GIF, BMP or WebP image"),
    (png()[:20], 400, "has a broken header"),
    (png_claiming(6000, 5000), 413, "30000000 pixels, at most 24000000"),
    (png_claiming(40000, 40000), 413, "decompression bomb"),
    (encode(photo(np.random.default_rng(2), (300, 200), "RGB"), "JPEG")[:5000], 400, "cannot be decoded"),
], ids=["empty", "text", "tiff", "cut-header", "over-the-limit", "bomb", "cut-pixels"])
def test_refusals_carry_an_http_status_and_name_the_file(data, status, phrase):
    with pytest.raises(ImageError) as err:
        decode_image(data, "up.load", (8, 8, 3), 24_000_000)
    assert err.value.status == status and phrase in err.value.message and "'up.load'" in err.value.message
    assert isinstance(err.value, ValueError) and str(err.value) == err.value.message
