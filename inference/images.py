"""Uploaded bytes -> one uint8 ``[H, W, C]`` array the model takes, or an ApiError saying why not."""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from inference.errors import ApiError

# Pillow decoders tried on an upload; everything else (TIFF, PSD, EPS, ...) is never parsed.
# JPEG's also opens the multi-picture JPEGs (MPO) many phones write.
FORMATS = ("PNG", "JPEG", "GIF", "BMP", "WEBP")
WHITE = (255, 255, 255, 255)  # what transparent pixels are composited on


def limit_pixels(max_pixels: int) -> None:
    """Pillow's own bomb guard at ``max_pixels``, behind decode_image's explicit check. That check refuses every
    image over the limit with a clear message, so Pillow's warning for images between 1x and 2x the limit is
    noise."""
    Image.MAX_IMAGE_PIXELS = max_pixels
    warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)


def decode_image(data: bytes, name: str, shape: tuple[int, int, int], max_pixels: int) -> np.ndarray:
    """Decode ``data`` (file ``name``) into the model's ``shape`` = (H, W, C), C being 1 or 3.

    EXIF orientation is applied, transparency is composited on white, 16-bit and palette images are
    reduced to 8-bit RGB or gray, and the result is resized (squashed, not cropped) to H x W.
    """
    if not data:
        raise ApiError(400, f"{name!r} is empty (0 bytes)")
    try:
        im = Image.open(io.BytesIO(data), formats=FORMATS)
    except UnidentifiedImageError:
        raise ApiError(
            415,
            f"{name!r} is not a PNG, JPEG, GIF, BMP or WebP image, or its header is cut short "
            f"({len(data)} bytes starting {data[:8]!r})",
        ) from None
    except Image.DecompressionBombError as e:
        raise ApiError(413, f"{name!r} is a decompression bomb: {e}") from e
    except Exception as e:  # a header Pillow recognises but cannot parse is still the upload's fault
        raise ApiError(400, f"{name!r} has a broken header: {type(e).__name__}: {e}") from e

    width, height = im.size
    if width < 1 or height < 1 or width * height > max_pixels:
        raise ApiError(
            413,
            f"{name!r} is {width}x{height} = {width * height} pixels, at most {max_pixels} are accepted "
            "(decompression-bomb guard)",
        )
    try:
        return _to_array(im, shape)
    except Exception as e:  # truncated or corrupt pixel data: Pillow raises OSError, SyntaxError, ValueError...
        raise ApiError(400, f"{name!r} ({im.format} {width}x{height} {im.mode}) cannot be decoded: {e}") from e


def _to_array(im: Image.Image, shape: tuple[int, int, int]) -> np.ndarray:
    height, width, channels = shape
    im.draft(im.mode, (width, height))  # JPEG only: let the decoder downscale by up to 8x (much faster)
    ImageOps.exif_transpose(im, in_place=True)
    if im.mode in ("I", "I;16", "I;16L", "I;16B", "I;16N", "F"):
        im = _to_8bit_gray(im)
    if im.has_transparency_data:
        im = im.convert("RGBA")
    elif im.mode not in ("RGB", "L"):
        im = im.convert("RGB")  # palette, CMYK, YCbCr, 1-bit
    # resize before compositing: far fewer pixels to touch, and Pillow resizes RGBA premultiplied
    im = im.resize((width, height), Image.Resampling.BILINEAR, reducing_gap=3.0)
    if im.mode == "RGBA":
        im = Image.alpha_composite(Image.new("RGBA", im.size, WHITE), im)
    pixels = np.asarray(im.convert("RGB" if channels == 3 else "L"), dtype=np.uint8)
    return pixels.reshape(height, width, channels)


def _to_8bit_gray(im: Image.Image) -> Image.Image:
    """Scale a 16-bit (or 32-bit int / float) gray image to 8 bits; Pillow's own convert clips at 255."""
    values = np.asarray(im)
    if im.mode.startswith("I;16") or values.max(initial=0) > 255:
        values = values / 257.0  # 65535 -> 255
    return Image.fromarray(np.clip(values, 0, 255).astype(np.uint8), "L")
