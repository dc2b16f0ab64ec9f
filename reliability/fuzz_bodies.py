"""The valid things the fuzz categories (``fuzz_inputs``) break: small images of each format, random bit flips, a
header rewritten to claim other dimensions, multipart bodies and their file parts, a valid v2 tensor request."""

from __future__ import annotations

import io
import random
import struct
import zlib

from PIL import Image

INPUT_SHAPE = (32, 32, 3)  # the served model's input (H, W, C)


def image(rng: random.Random, fmt: str) -> bytes:
    """A valid small image in ``fmt`` of random size and mode."""
    width, height = rng.randint(1, 48), rng.randint(1, 48)
    mode = rng.choice(("RGB", "L", "RGBA", "P")) if fmt in ("PNG", "WEBP", "GIF") else rng.choice(("RGB", "L"))
    image = Image.frombytes("RGB", (width, height), rng.randbytes(width * height * 3)).convert(mode)
    out = io.BytesIO()
    image.save(out, fmt, **({"lossless": rng.random() < 0.5} if fmt == "WEBP" else {}))
    return out.getvalue()


def flip_bits(rng: random.Random, data: bytes, flips: int) -> bytes:
    buffer = bytearray(data)
    for _ in range(flips):
        i = rng.randrange(len(buffer))
        buffer[i] ^= 1 << rng.randrange(8)
    return bytes(buffer)


def set_dimensions(data: bytes, fmt: str, width: int, height: int) -> bytes:
    """``data`` (a valid ``fmt`` file) with the header claiming ``width`` x ``height`` pixels, where the format
    can say so (each format's field is only so wide: the values are clipped to it)."""
    buffer = bytearray(data)
    if fmt == "PNG":  # IHDR right after the 8-byte signature; its CRC is fixed so the lie looks real
        struct.pack_into(">II", buffer, 16, width, height)
        struct.pack_into(">I", buffer, 29, zlib.crc32(bytes(buffer[12:29])))
    elif fmt == "JPEG":  # the first SOFn segment: marker, length, precision, height, width
        sof = next(i for i in range(2, len(buffer) - 9) if buffer[i] == 0xFF and buffer[i + 1] in (0xC0, 0xC1, 0xC2))
        struct.pack_into(">HH", buffer, sof + 5, min(height, 0xFFFF), min(width, 0xFFFF))
    elif fmt == "GIF":  # the logical screen, then the first image descriptor when it follows the colour table
        struct.pack_into("<HH", buffer, 6, min(width, 0xFFFF), min(height, 0xFFFF))
        table = 3 * 2 ** ((buffer[10] & 7) + 1) if buffer[10] & 0x80 else 0
        descriptor = buffer.find(b",", 13 + table)
        if descriptor > 0 and descriptor + 9 <= len(buffer):
            struct.pack_into("<HH", buffer, descriptor + 5, min(width, 0xFFFF), min(height, 0xFFFF))
    elif fmt == "WEBP":
        if buffer[12:16] == b"VP8 ":  # lossy: 14-bit sizes after the frame tag and start code
            struct.pack_into("<HH", buffer, 26, min(width, 0x3FFF), min(height, 0x3FFF))
        elif buffer[12:16] == b"VP8L":  # lossless: 14-bit (size - 1) fields after the signature byte
            bits = (max(min(width, 0x4000), 1) - 1) | (max(min(height, 0x4000), 1) - 1) << 14
            struct.pack_into("<I", buffer, 21, (struct.unpack_from("<I", buffer, 21)[0] & ~0xFFFFFFF) | bits)
    elif fmt == "BMP":  # BITMAPINFOHEADER: signed 32-bit width and height
        struct.pack_into("<ii", buffer, 18, min(width, 2**31 - 1), min(height, 2**31 - 1))
    return bytes(buffer)


def multipart(parts: list[bytes], boundary: str, close: bool = True) -> bytes:
    body = b"".join(b"--" + boundary.encode("latin-1") + b"\r\n" + part + b"\r\n" for part in parts)
    return body + (b"--" + boundary.encode("latin-1") + b"--\r\n" if close else b"")


def file_part(data: bytes, filename: str = "a.png", field: str = "file", content_type: str = "image/png") -> bytes:
    disposition = f'Content-Disposition: form-data; name="{field}"; filename="{filename}"'
    return f"{disposition}\r\nContent-Type: {content_type}\r\n\r\n".encode("latin-1", "replace") + data


def tensor_request(rng: random.Random, images: int = 1) -> dict:
    """A valid v2 inference request (JSON data) for the model's input, to break one field of."""
    count = images * INPUT_SHAPE[0] * INPUT_SHAPE[1] * INPUT_SHAPE[2]
    return {"inputs": [{"name": "image", "datatype": "UINT8", "shape": [images, *INPUT_SHAPE],
                        "data": list(rng.randbytes(count))}]}
