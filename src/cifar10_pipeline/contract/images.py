"""Image file bytes -> the uint8 ``[H, W, C]`` pixels a model of the contract takes: the one decoder.

The service decodes every upload with ``decode_image`` and the folder data set decodes every training image with
it, so a model sees in training exactly the pixels it sees when served (no train/serve skew). Unlike the contract's
numpy-only core (``contract/__init__.py``) this module needs Pillow, which both the ``train`` and ``serve`` extras
install; importing ``contract`` alone does not load it.

A file that cannot be decoded raises ``ImageError``, carrying the 4xx HTTP status the service answers with; the
training side turns it into a DataError naming the file.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
import PIL
from PIL import Image, ImageOps, UnidentifiedImageError

# Pillow decoders tried on a file; everything else (TIFF, PSD, EPS, ...) is never parsed.
# JPEG's also opens the multi-picture JPEGs (MPO) many phones write.
FORMATS = ("PNG", "JPEG", "GIF", "BMP", "WEBP")
SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp")  # the file names of FORMATS, lower case
WHITE = (255, 255, 255, 255)  # what transparent pixels are composited on
# Bump whenever decode_image gives other pixels for the same bytes. DECODER (Pillow's version too: its decoders
# and resampling change between releases) keys the training caches of decoded images, so a cached array is never
# one this decoder would no longer produce.
DECODE_VERSION = 1
DECODER = f"contract.images {DECODE_VERSION}, Pillow {PIL.__version__}"

_HIGH_BIT_GRAY = ("I", "I;16", "I;16L", "I;16B", "I;16N", "F")  # scaled to 8 bits by _to_8bit_gray
# modes whose pixels are gray levels: a model with C == 1 loses nothing on them. Palette (P, PA) images count as
# colour whatever their palette holds, like RGB(A), CMYK and YCbCr.
GRAY_MODES = frozenset({"1", "L", "LA", *_HIGH_BIT_GRAY})


class ImageError(ValueError):
    """A file that cannot be decoded; ``status`` is the HTTP status a server answers with (400, 413 or 415)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def limit_pixels(max_pixels: int) -> None:
    """Pillow's own bomb guard at ``max_pixels``, behind decode_image's explicit check. That check refuses every
    image over the limit with a clear message, so Pillow's warning for images between 1x and 2x the limit is
    noise."""
    Image.MAX_IMAGE_PIXELS = max_pixels
    warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)


def open_image(data: bytes, name: str, max_pixels: int) -> Image.Image:
    """Parse the header of ``data`` (file ``name``) in one of ``FORMATS``, at most ``max_pixels`` (width *
    height); the pixels are decoded later, by ``decode_image``. Its ``mode`` tells whether it is gray
    (``GRAY_MODES``)."""
    if not data:
        raise ImageError(400, f"{name!r} is empty (0 bytes)")
    try:
        im = Image.open(io.BytesIO(data), formats=FORMATS)
    except UnidentifiedImageError:
        raise ImageError(
            415,
            f"{name!r} is not a PNG, JPEG, GIF, BMP or WebP image, or its header is cut short "
            f"({len(data)} bytes starting {data[:8]!r})",
        ) from None
    except Image.DecompressionBombError as e:
        raise ImageError(413, f"{name!r} is a decompression bomb: {e}") from e
    except Exception as e:  # a header Pillow recognises but cannot parse is still the file's fault
        raise ImageError(400, f"{name!r} has a broken header: {type(e).__name__}: {e}") from e

    width, height = im.size
    if width < 1 or height < 1 or width * height > max_pixels:
        raise ImageError(
            413,
            f"{name!r} is {width}x{height} = {width * height} pixels, at most {max_pixels} are accepted "
            "(decompression-bomb guard)",
        )
    return im


def decode_image(data: bytes, name: str, shape: tuple[int, int, int], max_pixels: int) -> np.ndarray:
    """Decode ``data`` (file ``name``) into the model's ``shape`` = (H, W, C), C being 1 or 3.

    EXIF orientation is applied, transparency is composited on white, 16-bit and palette images are
    reduced to 8-bit RGB or gray, and the result is resized (squashed, not cropped) to H x W.
    """
    im = open_image(data, name, max_pixels)
    try:
        return _to_array(im, shape)
    except Exception as e:  # truncated or corrupt pixel data: Pillow raises OSError, SyntaxError, ValueError...
        width, height = im.size
        raise ImageError(400, f"{name!r} ({im.format} {width}x{height} {im.mode}) cannot be decoded: {e}") from e


def resize_pixels(pixels: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """uint8 ``[h, w, C]`` pixels (C = 1 or 3) brought to ``shape`` exactly as ``decode_image`` brings a
    lossless file holding them (a PNG of them uploaded to the service gives the same array)."""
    return _to_array(Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels), shape)


def _to_array(im: Image.Image, shape: tuple[int, int, int]) -> np.ndarray:
    height, width, channels = shape
    im.draft(im.mode, (width, height))  # JPEG only: let the decoder downscale by up to 8x (much faster)
    ImageOps.exif_transpose(im, in_place=True)
    if im.mode in _HIGH_BIT_GRAY:
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
