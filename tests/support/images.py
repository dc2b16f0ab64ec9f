"""Test images as bytes: solid colours in any format and mode, and headers that claim any size."""

from __future__ import annotations

import io
import struct
import zlib

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
