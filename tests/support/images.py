"""Test images as bytes: solid colours in any format and mode, and headers that claim any size."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image

COLOUR = (200, 30, 60)  # the test colour; its top class wins by a wide margin (see test_images.py)


def encode(im: Image.Image, fmt: str, **save_args) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **save_args)
    return buf.getvalue()


def solid(colour=COLOUR, size=(40, 30), mode="RGB") -> Image.Image:
    return Image.new(mode, size, colour)


def png(colour=COLOUR, size=(40, 30)) -> bytes:
    return encode(solid(colour, size), "PNG")


def png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` pixels; there are no pixels behind it."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def red_over_blue(fmt: str, orientation: int) -> bytes:
    """An 80x40 image, red on top and blue below as stored, with EXIF ``orientation``: 3 turns it upside down,
    6 stands it on its side with red on the right, 8 with red on the left."""
    pixels = np.zeros((40, 80, 3), np.uint8)
    pixels[:20] = (255, 0, 0)
    pixels[20:] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(Image.fromarray(pixels), fmt, exif=exif, **({"quality": 95} if fmt != "PNG" else {}))


# (file suffix, Pillow format, mode, EXIF orientation) of the photos write_photos spreads over a folder: every
# format the decoder opens and every mode it handles, upper-case suffixes and rotated JPEGs included
PHOTO_KINDS = (
    (".jpg", "JPEG", "RGB", 1), (".JPEG", "JPEG", "RGB", 6), (".jpeg", "JPEG", "CMYK", 1), (".jpg", "JPEG", "L", 8),
    (".png", "PNG", "RGB", 3), (".png", "PNG", "RGBA", 1), (".PNG", "PNG", "P", 1), (".png", "PNG", "L", 1),
    (".png", "PNG", "LA", 1), (".png", "PNG", "I;16", 1), (".png", "PNG", "1", 1), (".gif", "GIF", "P", 1),
    (".bmp", "BMP", "RGB", 1), (".webp", "WEBP", "RGBA", 1),
)
GRAY_KINDS = tuple(kind for kind in PHOTO_KINDS if kind[2] in ("L", "LA", "I;16", "1"))


def photo(rng: np.random.Generator, size: tuple[int, int], mode: str, colour=COLOUR) -> Image.Image:
    """A ``size`` = (width, height) picture in ``mode``: ``colour`` under a smooth gradient and noise, so that
    resizing and every conversion change its pixels (a solid colour would hide a wrong filter)."""
    width, height = size
    y, x = np.mgrid[0:height, 0:width]
    gradient = 60 * np.sin(x / max(width, 1) * 7 + y / max(height, 1) * 3)[..., None]
    rgb = np.clip(np.array(colour) + gradient + rng.normal(0, 20, (height, width, 3)), 0, 255).astype(np.uint8)
    im = Image.fromarray(rgb)
    if mode == "I;16":
        return Image.fromarray(np.asarray(im.convert("L")).astype(np.uint16) * 257)
    if mode in ("RGBA", "LA"):
        alpha = Image.fromarray((255 * (x / max(width - 1, 1))).astype(np.uint8))  # transparent left, opaque right
        im = im.convert(mode[:-1])  # RGB or L
        im.putalpha(alpha)
        return im
    if mode == "P":
        return im.convert("P", palette=Image.Palette.ADAPTIVE)
    return im.convert(mode)


def write_photos(root, counts: dict[str, int], classes=("cat", "dog"), kinds=PHOTO_KINDS, seed: int = 0,
                 sizes=(40, 300)) -> list:
    """``counts[split]`` photos per class under ``root/<split>/<class>/``, cycling through ``kinds``, each of a
    random width and height in ``sizes`` (pixels, inclusive) and a colour of its class; returns their paths."""
    rng = np.random.default_rng(seed)
    palette = [(200, 30, 60), (30, 160, 220), (40, 200, 90), (230, 200, 40)]
    paths = []
    for split, count in counts.items():
        for c, name in enumerate(classes):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                suffix, fmt, mode, orientation = kinds[(i + c) % len(kinds)]
                size = tuple(int(v) for v in rng.integers(sizes[0], sizes[1] + 1, 2))
                exif = Image.Exif()
                exif[0x0112] = orientation
                path = folder / f"{i:03d}{suffix}"
                path.write_bytes(encode(photo(rng, size, mode, palette[c % len(palette)]), fmt, exif=exif))
                paths.append(path)
    return paths


# where each format's header keeps its size, in a small file Pillow wrote: (marker, offset after it, struct format)
_SIZE_FIELDS = {
    "JPEG": [(b"\xff\xc0", 5, ">HH", "hw")],  # baseline SOF0: length, precision, then height and width
    # the logical screen (width, height at byte 6) and the first frame's image descriptor (after left, top)
    "GIF": [(b"GIF8", 6, "<HH", "wh"), (b"\x2c\x00\x00\x00\x00", 5, "<HH", "wh")],
    # a lossy frame: chunk header, frame tag, start code 9d 01 2a, then 14-bit width and height
    "WEBP": [(b"\x9d\x01\x2a", 3, "<HH", "wh")],
}


def claiming(fmt: str, width: int, height: int) -> bytes:
    """A small ``fmt`` image (JPEG, GIF or WEBP) whose header claims ``width`` x ``height``: a decompression bomb
    as the decoder sees it before the first pixel. WebP's sizes have 14 bits (at most 16383)."""
    data = bytearray(encode(solid(), fmt, **({"lossless": False} if fmt == "WEBP" else {})))
    for marker, offset, layout, order in _SIZE_FIELDS[fmt]:
        at = data.index(marker) + offset
        size = {"w": width, "h": height}
        data[at:at + 4] = struct.pack(layout, *(size[c] for c in order))
    return bytes(data)
