"""A seeded generator of malformed HTTP requests for /predict and /v2/models/<name>/infer: the fuzz scenario's
inputs. ``requests(count, seed, config)`` yields ``Request`` values, the categories taking turns, so any prefix
covers every category and the same seed gives the same bytes (gzip bodies carry no timestamp). The limits the
requests probe (upload bytes, files per request) and the model's name in the /v2 URL are read from the service's
configuration (``ServiceConfig``: pass the one the server runs with, its defaults for a server with default
settings).

Each request is written out whole (request line, headers, body), so that headers can lie: a Content-Length
that is not the body's length, two of them, chunked bodies whose chunk sizes are wrong. The valid files and bodies
the categories break come from ``fuzz_bodies``.
"""

from __future__ import annotations

import gzip
import json
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from cifar10_pipeline.inference.config import ServiceConfig
from reliability import fuzz_bodies as bodies

IMAGE_FORMATS = ("PNG", "JPEG", "GIF", "WEBP", "BMP")
IMAGE_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp", "image/bmp", "image/x-anything")


@dataclass(frozen=True)
class Request:
    category: str
    path: str
    headers: tuple[tuple[str, str], ...]  # sent as given, Content-Length included or not
    body: bytes
    short_body: bool = False  # the headers promise more body than is sent: the client must end it (half-close)

    def raw(self) -> bytes:
        head = [f"POST {self.path} HTTP/1.1", "Host: 127.0.0.1", "Connection: close"]
        head += [f"{name}: {value}" for name, value in self.headers]
        return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + self.body


Made = tuple[str, tuple[tuple[str, str], ...], bytes]  # (path, headers, body) of one request


def _sized(body: bytes, content_type: str | None = None, **extra: str) -> tuple[tuple[str, str], ...]:
    """Honest headers for ``body``: its Content-Type (if any), its true Content-Length, and ``extra``."""
    headers = [("Content-Type", content_type)] if content_type is not None else []
    return (*headers, ("Content-Length", str(len(body))), *((k.replace("_", "-"), v) for k, v in extra.items()))


class Generator:
    """Makes the requests of each category from one seeded random stream."""

    def __init__(self, seed: int, config: ServiceConfig):
        self.rng = random.Random(seed)
        self.infer_path = f"/v2/models/{config.model_name}/infer"
        self.max_upload_bytes, self.max_files = config.max_upload_bytes, config.max_files
        self.categories: dict[str, Callable[[], Made]] = {
            "random bytes to /predict": self.random_bytes_predict,
            "random bytes to /v2 infer": self.random_bytes_v2,
            "truncated image": self.truncated_image,
            "bit-flipped image": self.bit_flipped_image,
            "wrong content type": self.wrong_content_type,
            "huge declared dimensions": self.huge_dimensions,
            "zero-size image": self.zero_size_image,
            "Content-Length lies (/predict)": lambda: self.length_lie("/predict"),
            "Content-Length lies (/v2 infer)": lambda: self.length_lie(self.infer_path),
            "multipart edge cases": self.multipart_edge,
            "bad JSON tensors": self.bad_tensor,
            "broken JSON and encodings (/v2 infer)": self.broken_json,
            "binary tensor lies (/v2 infer)": self.binary_lie,
        }

    def valid_image(self) -> tuple[str, bytes]:
        fmt = self.rng.choice(IMAGE_FORMATS)
        return fmt, bodies.image(self.rng, fmt)

    def image_type(self, fmt: str | None = None) -> str:
        return f"image/{fmt.lower()}" if fmt and self.rng.random() < 0.7 else self.rng.choice(IMAGE_TYPES)

    def random_bytes_predict(self) -> Made:
        body = self.rng.randbytes(int(2 ** self.rng.uniform(0, 14)))
        return ("/predict", _sized(body, self.image_type()), body)

    def random_bytes_v2(self) -> Made:
        body = self.rng.randbytes(int(2 ** self.rng.uniform(0, 14)))
        content_type = self.rng.choice(("application/json", "application/octet-stream", None))
        return (self.infer_path, _sized(body, content_type), body)

    def truncated_image(self) -> Made:
        fmt, data = self.valid_image()
        body = data[: self.rng.randrange(len(data))]
        return ("/predict", _sized(body, self.image_type(fmt)), body)

    def bit_flipped_image(self) -> Made:
        fmt, data = self.valid_image()
        body = bodies.flip_bits(self.rng, data, self.rng.randint(1, 32))
        return ("/predict", _sized(body, self.image_type(fmt)), body)

    def wrong_content_type(self) -> Made:
        _fmt, body = self.valid_image()
        content_type = self.rng.choice((
            "text/plain", "application/json", "application/x-www-form-urlencoded", "application/octet-stream",
            "", "image", "image/", "imagepng", ";;;", "multipart/mixed", "image/png; charset=\xff\xfe",
            "x" * 8000, "*/*", "multipart/form-data; boundary=", None,
        ))
        return ("/predict", _sized(body, content_type), body)

    def huge_dimensions(self) -> Made:
        fmt, data = self.valid_image()
        side = self.rng.choice((5_000, 65_535, 100_000, 2**31 - 1, 2**32 - 1))
        width, height = (side, side) if self.rng.random() < 0.5 else (1, side) if self.rng.random() < 0.5 else (side, 1)
        body = bodies.set_dimensions(data, fmt, width, height)
        if self.rng.random() < 0.3:  # a tiny file claiming millions of pixels, the pixel data cut short
            body = body[: max(64, len(body) // 4)]
        return ("/predict", _sized(body, self.image_type(fmt)), body)

    def zero_size_image(self) -> Made:
        fmt, data = self.valid_image()
        choice = self.rng.randrange(3)
        if choice == 0:  # no bytes at all
            body = b""
            return ("/predict", _sized(body, self.image_type(fmt)), body)
        if choice == 1:  # a header saying 0 pixels wide or high
            width, height = self.rng.choice(((0, 0), (0, 8), (8, 0)))
            body = bodies.set_dimensions(data, fmt, width, height)
            return ("/predict", _sized(body, self.image_type(fmt)), body)
        boundary = f"b{self.rng.getrandbits(64):x}"  # an empty file in a form
        body = bodies.multipart([bodies.file_part(b"")], boundary)
        return ("/predict", _sized(body, f"multipart/form-data; boundary={boundary}"), body)

    def length_lie(self, path: str) -> Made:
        fmt, body = self.valid_image()
        content_type = ("Content-Type", self.image_type(fmt) if path == "/predict" else "application/json")
        kind = self.rng.randrange(7)
        if kind == 0:  # more declared than sent (the client half-closes: the body ends early)
            headers = (content_type, ("Content-Length", str(len(body) + self.rng.randint(1, 100_000))))
        elif kind == 1:  # less declared than sent: the rest reads as a next request
            headers = (content_type, ("Content-Length", str(self.rng.randrange(len(body)))))
        elif kind == 2:  # far over the upload limit, body small
            declared = self.rng.choice((self.max_upload_bytes + 1, 2**31, 10**18))
            headers = (content_type, ("Content-Length", str(declared)))
        elif kind == 3:  # not a number
            headers = (content_type, ("Content-Length", self.rng.choice(("-1", "abc", "1e3", "0x10", " ", "12 34"))))
        elif kind == 4:  # two that disagree
            headers = (content_type, ("Content-Length", str(len(body))), ("Content-Length", str(len(body) // 2)))
        elif kind == 5:  # chunked with chunk sizes that lie or are not hex
            size = self.rng.choice((f"{len(body) + 500:x}", f"{len(body) // 2:x}", "zz", "-5", "ffffffffffffffff"))
            body = size.encode() + b"\r\n" + body + self.rng.choice((b"\r\n0\r\n\r\n", b"", b"\r\n"))
            headers = (content_type, ("Transfer-Encoding", "chunked"))
        else:  # both Content-Length and chunked
            chunked = f"{len(body):x}".encode() + b"\r\n" + body + b"\r\n0\r\n\r\n"
            headers = (content_type, ("Content-Length", str(len(body))), ("Transfer-Encoding", "chunked"))
            body = chunked
        return (path, headers, body)

    def multipart_edge(self) -> Made:
        rng = self.rng
        boundary = rng.choice((f"b{rng.getrandbits(64):x}", "x" * 200, "a b", "\"quoted\"", "-", "é"))
        fmt, image = self.valid_image()
        content_type = f"multipart/form-data; boundary={boundary}"
        kind = rng.randrange(10)
        if kind == 0:  # no boundary parameter
            body, content_type = bodies.multipart([bodies.file_part(image)], boundary), "multipart/form-data"
        elif kind == 1:  # the body uses another boundary
            body = bodies.multipart([bodies.file_part(image)], "other" + boundary)
        elif kind == 2:  # a text field only, no file
            body = bodies.multipart([b'Content-Disposition: form-data; name="note"\r\n\r\nhello'], boundary)
        elif kind == 3:  # many file parts, past the files-per-request limit
            files = rng.randint(self.max_files + 1, 300)
            body = bodies.multipart([bodies.file_part(rng.randbytes(8), f"{i}.png") for i in range(files)], boundary)
        elif kind == 4:  # many small non-file fields, past the form parser's part limit
            body = bodies.multipart([f'Content-Disposition: form-data; name="f{i}"\r\n\r\nv'.encode()
                               for i in range(rng.randint(900, 1500))], boundary)
        elif kind == 5:  # an empty or odd file name
            name = rng.choice(("", "../../etc/passwd", "\x00.png", "a\"b.png", "é" * 300, "."))
            body = bodies.multipart([bodies.file_part(image, name)], boundary)
        elif kind == 6:  # never closed
            body = bodies.multipart([bodies.file_part(image)], boundary, close=False)[: -rng.randint(0, 20) or None]
        elif kind == 7:  # a part without Content-Disposition, or without headers at all
            body = bodies.multipart([rng.choice((b"Content-Type: image/png\r\n\r\n" + image, image))], boundary)
        elif kind == 8:  # a multipart/mixed inside the form
            inner = bodies.multipart([bodies.file_part(image)], "inner")
            body = bodies.multipart([b'Content-Disposition: form-data; name="files"\r\n'
                               b"Content-Type: multipart/mixed; boundary=inner\r\n\r\n" + inner], boundary)
        else:  # a broken image inside a well-formed form
            body = bodies.multipart([bodies.file_part(bodies.flip_bits(rng, image, 8), "a." + fmt.lower())], boundary)
        return ("/predict", _sized(body, content_type), body)

    def bad_tensor(self) -> Made:
        rng = self.rng
        request = bodies.tensor_request(rng)
        tensor = request["inputs"][0]
        junk = rng.choice((None, True, 1.5, "x", {}, [], [[]], {"a": [1]}, -1, 2**70, "NaN"))
        kind = rng.randrange(12)
        if kind == 0:
            tensor["shape"] = rng.choice(([1, 32, 32], [1, 32, 32, 4], [0, 32, 32, 3], [-1, 32, 32, 3],
                                          [10**9, 32, 32, 3], [self.max_files + 1, 32, 32, 3], ["1", 32, 32, 3],
                                          [1.0, 32, 32, 3], [True, 32, 32, 3], [1, 32, 32, 3, 1], [], junk))
        elif kind == 1:
            tensor["datatype"] = rng.choice(("FP32", "INT8", "uint8", "BYTES", "UINT16", "", 5, None, junk))
        elif kind == 2:  # too few or too many values
            tensor["data"] = tensor["data"][: rng.randrange(len(tensor["data"]))] if rng.random() < 0.5 \
                else tensor["data"] + [0] * rng.randint(1, 3072)
        elif kind == 3:  # values out of UINT8's range, or not integers
            i = rng.randrange(len(tensor["data"]))
            tensor["data"][i] = rng.choice((-1, 256, 1e300, 0.5, "7", None, True, [1], {"v": 1}, 2**64))
        elif kind == 4:  # nested, but ragged or nested too deep
            rows = [tensor["data"][i:i + 3] for i in range(0, len(tensor["data"]), 3)]
            rows[rng.randrange(len(rows))].append(rng.randrange(256))
            tensor["data"] = rows if rng.random() < 0.5 else [[[rows]]]
        elif kind == 5:
            tensor["data"] = junk
        elif kind == 6:
            request["inputs"] = rng.choice(([], {}, None, "image", [tensor, tensor], [1, 2], [{**tensor, "name": "x"}],
                                            [{}], [[tensor]]))
        elif kind == 7:
            classification = rng.choice((0, 11, -1, "3", 1.5))
            request["outputs"] = rng.choice(({}, "logits", [{"name": "probs"}], [{"name": "logits"}] * 2,
                                             [{"name": "logits", "parameters": {"classification": classification}}],
                                             [{"name": "logits", "parameters": {"binary_data": "yes"}}], [None]))
        elif kind == 8:  # request parameters or id of the wrong type
            if rng.random() < 0.5:
                request["parameters"] = rng.choice(([], "x", {"binary_data_output": 1}, None))
            else:
                request["id"] = rng.choice((5, [], {"a": 1}, 1.5, False))
        elif kind == 9:  # the whole request is not an object
            request = rng.choice(([request], "inputs", 42, None, True))
        elif kind == 10:  # nested far deeper than any real tensor
            depth = rng.choice((100, 1000, 100_000))
            body = b'{"inputs":[{"name":"image","datatype":"UINT8","shape":[1,32,32,3],"data":' + \
                b"[" * depth + b"1" + b"]" * depth + b"}]}"
            return (self.infer_path, _sized(body, "application/json"), body)
        else:  # a key removed
            del tensor[rng.choice(("name", "datatype", "shape", "data"))]
        body = json.dumps(request).encode()
        return (self.infer_path, _sized(body, "application/json"), body)

    def broken_json(self) -> Made:
        rng = self.rng
        body = json.dumps(bodies.tensor_request(rng)).encode()
        kind = rng.randrange(5)
        if kind == 0:
            body = body[: rng.randrange(len(body))]
            return (self.infer_path, _sized(body, "application/json"), body)
        if kind == 1:
            body = bodies.flip_bits(rng, body, rng.randint(1, 16))
            return (self.infer_path, _sized(body, "application/json"), body)
        if kind == 2:  # gzip that is cut short, or garbage said to be gzip / deflate / an unknown coding
            encoding = rng.choice(("gzip", "deflate", "br", "x-junk"))
            body = gzip.compress(body, mtime=0)[: rng.randrange(10, 200)] if rng.random() < 0.5 else rng.randbytes(100)
            return (self.infer_path, _sized(body, "application/json", Content_Encoding=encoding), body)
        if kind == 3:  # a small gzip body inflating far past the upload limit
            body = gzip.compress(b" " * (self.max_upload_bytes + rng.randint(1, 4096)), compresslevel=9, mtime=0)
            return (self.infer_path, _sized(body, "application/json", Content_Encoding="gzip"), body)
        body = body.replace(b'"UINT8"', rng.choice((b"UINT8", b'"UINT8', b"'UINT8'", b"NaN", b"\xff\xfe")))
        return (self.infer_path, _sized(body, "application/json"), body)

    def binary_lie(self) -> Made:
        rng = self.rng
        count = bodies.INPUT_SHAPE[0] * bodies.INPUT_SHAPE[1] * bodies.INPUT_SHAPE[2]
        while True:  # at least one of the three lies: the declared tensor size, the bytes sent, the header length
            size = rng.choice((count, count - 1, count + 1, 0, -1, "3072", 1.5, None))
            sent = rng.choice((count, count - 7, count + 7, 0))
            header_off = rng.choice((0, -1, 5, "-1", "x", 10**12, "", "past the body"))
            if (size, sent, header_off) != (count, count, 0):
                break
        tensor = {"name": "image", "datatype": "UINT8", "shape": [1, *bodies.INPUT_SHAPE],
                  "parameters": {"binary_data_size": size}}
        header = json.dumps({"inputs": [tensor]}).encode()
        binary = rng.randbytes(sent)
        declared = (str(len(header) + header_off) if isinstance(header_off, int) and header_off < 10**12
                    else str(len(header) + len(binary) + 1) if header_off == "past the body" else str(header_off))
        body = header + binary
        return (self.infer_path, _sized(body, "application/octet-stream", Inference_Header_Content_Length=declared),
                       body)


def requests(count: int, seed: int, config: ServiceConfig) -> Iterator[Request]:
    """``count`` malformed requests, the categories taking turns."""
    generator = Generator(seed, config)
    names = list(generator.categories)
    for i in range(count):
        name = names[i % len(names)]
        path, headers, body = generator.categories[name]()
        short = any(k == "Transfer-Encoding" for k, _ in headers) or any(
            k == "Content-Length" and v.isdigit() and int(v) > len(body) for k, v in headers)
        yield Request(name, path, headers, body, short)


def categories() -> list[str]:
    return list(Generator(0, ServiceConfig()).categories)
