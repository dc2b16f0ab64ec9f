"""Test images as bytes: solid colours in any format and mode, and PNG headers that claim any size."""

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
