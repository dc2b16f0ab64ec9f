"""The one decoder (``contract.images``): EXIF orientation, downscaling while decoding, what counts as gray, the
resize of arrays, and every refusal as an ImageError with its HTTP status."""

from __future__ import annotations

import hashlib
import warnings

import numpy as np
import pytest
from PIL import Image

from cifar10_pipeline.contract import images
from cifar10_pipeline.contract.images import (DECODER, GRAY_MODES, ImageError, decode_image, limit_pixels, open_image,
                                              resize_pixels)
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


def test_16_bit_gray_files_are_scaled_to_8_bits_whatever_their_values():
    # 65535 -> 255 for every 16-bit file, also one whose values all fit in 8 bits
    for values, expected in (([0, 257, 25700, 65535], [0, 1, 100, 255]), ([0, 200, 255, 255], [0, 0, 0, 0])):
        data = encode(Image.fromarray(np.array([values], np.uint16)), "PNG")
        assert open_image(data, "x", 10**6).mode == "I;16"
        assert decode_image(data, "x", (1, 4, 1), 10**6).ravel().tolist() == expected


def test_32_bit_and_float_gray_are_scaled_only_beyond_8_bits_and_clipped():
    # modes I and F (no accepted format decodes to them with this Pillow, but the decoder takes them): values that
    # fit in 8 bits are kept, wider ones scaled as 16-bit (/ 257), and whatever lies outside 0..255 clipped
    def gray(values, mode):
        im = images._to_8bit_gray(Image.fromarray(np.array([values], np.int32 if mode == "I" else np.float32), mode))
        assert im.mode == "L"
        return np.asarray(im).ravel().tolist()

    assert gray([0, 100, 255], "I") == [0, 100, 255]
    assert gray([0, 128, 256], "I") == [0, 0, 0]
    assert gray([-1000, 0, 25700, 70000], "I") == [0, 0, 100, 255]
    assert gray([-3.0, 7.0, 300.0 * 257], "F") == [0, 0, 255]


@pytest.mark.parametrize("mode", ["RGBA", "LA", "P", "RGB"])
@pytest.mark.parametrize("channels", [1, 3])
def test_transparent_pixels_are_white_in_every_mode(mode, channels):
    # a black picture, fully transparent: white once composited, whichever way the file carries its transparency
    if mode in ("P", "RGB"):  # a transparent palette entry, or a transparent colour (tRNS)
        im = Image.new(mode, (6, 4), 0)
        if mode == "P":
            im.putpalette([0, 0, 0] * 256)
        im.info["transparency"] = 0 if mode == "P" else (0, 0, 0)
    else:
        im = Image.new(mode, (6, 4), 0)
    data = encode(im, "PNG")
    assert open_image(data, "x", 10**6).has_transparency_data
    np.testing.assert_array_equal(decode_image(data, "x", (2, 3, channels), 10**6), 255)


@pytest.mark.parametrize("mode", ["P", "1"])
def test_palette_and_1_bit_images_are_resized_as_colour_not_nearest(mode):
    # black and white side by side, squashed to one pixel: a blend, as any RGB image of them gives
    im = Image.new(mode, (2, 1), 0)
    if mode == "P":
        im.putpalette([0, 0, 0, 255, 255, 255])
    im.putpixel((1, 0), 1 if mode == "P" else 255)
    assert decode_image(encode(im, "PNG"), "x", (1, 1, 3), 10**6).ravel().tolist() == [128, 128, 128]


# sha256 of the pixels decode_image gives for the files of PINNED_FILES, per DECODER: the same bytes give the same
# pixels as long as DECODER (the version the training caches are keyed on) is unchanged. A Pillow upgrade changes
# DECODER: add its figures (after checking the decoder's other tests pass on it).
PINNED = {"contract.images 1, Pillow 13.0.0": "f3d09eef75b1967bec0e0145d75ace52375b08abfc4652ff8c5fd212210a6e29"}


def pinned_files() -> list[tuple[bytes, tuple[int, int, int]]]:
    rng = np.random.default_rng(11)
    large = Image.fromarray(rng.integers(0, 256, (300, 400, 3), dtype=np.uint8)).resize((400, 300))
    smooth = Image.fromarray(np.uint8(np.add.outer(np.arange(240), np.arange(320)) % 256)).convert("RGB")
    return [(encode(large, "PNG"), (32, 32, 3)), (encode(large, "JPEG", quality=90), (32, 32, 3)),
            (encode(smooth, "JPEG", quality=95), (24, 40, 1)), (encode(smooth, "WEBP", quality=90), (13, 29, 3))]


def test_the_decoder_gives_the_same_pixels_for_the_same_bytes_while_its_version_stands():
    digest = hashlib.sha256(b"".join(decode_image(data, "x", shape, 10**8).tobytes()
                                     for data, shape in pinned_files())).hexdigest()
    assert DECODER in PINNED, f"no pinned pixels for {DECODER!r}; this one gives {digest}"
    assert digest == PINNED[DECODER]


def test_only_the_bomb_warning_is_silenced():
    before = Image.MAX_IMAGE_PIXELS
    with warnings.catch_warnings(record=True) as caught:  # the filters limit_pixels adds end with this block
        warnings.simplefilter("always")
        limit_pixels(1000)
        try:
            open_image(png(size=(40, 30)), "x", 2000)  # 1200 pixels: between Pillow's limit and twice it
            warnings.warn("another warning", UserWarning)
        finally:
            Image.MAX_IMAGE_PIXELS = before
    assert [str(w.message) for w in caught] == ["another warning"]
