"""The browser's resize (``/web/pixels.mjs``'s ``squash``) against Pillow's, pixel for pixel, in real Chromium: random
pixels, so no rounding can hide, through every path of ``Image.resize(size, BILINEAR, reducing_gap=3.0)``: the integer
reduce by one or both factors (with a partial last block), the premultiplied alpha of RGBA, upscaling, either order of
the two passes, and the gray model's luma."""

from __future__ import annotations

import base64

import numpy as np
import pytest
from PIL import Image

from cifar10_pipeline.contract.images import decode_image
from tests.support.images import encode

pytestmark = pytest.mark.slow

# (width, height) of the source: native, small up and down, one axis only, reduce by one or both factors, tall and
# wide (vertical pass first, then horizontal first), large
SIZES = [(32, 32), (40, 30), (31, 33), (33, 32), (32, 100), (17, 5), (97, 95), (100, 200), (300, 40), (1000, 33),
         (33, 1000), (193, 191), (640, 480)]
SHAPES = [(32, 32, 3), (28, 28, 1), (24, 40, 3)]
ALPHAS = ["opaque", "translucent", "cut-out"]


def source(rng: np.random.Generator, size: tuple[int, int], alpha: str) -> np.ndarray:
    """RGBA pixels ``[height, width, 4]``: random colours, alpha 255, random, or 0/255."""
    width, height = size
    rgba = rng.integers(0, 256, (height, width, 4), dtype=np.uint8)
    rgba[..., 3] = {"opaque": 255, "translucent": rgba[..., 3], "cut-out": (rgba[..., 3] > 127) * 255}[alpha]
    return rgba


def test_squash_gives_pillows_pixels(page):
    rng = np.random.default_rng(0)
    cases = [(size, alpha, shape) for size in SIZES for alpha in ALPHAS for shape in SHAPES]
    mismatches = []
    for size, alpha, shape in cases:
        rgba = source(rng, size, alpha)
        im = Image.fromarray(rgba, "RGBA") if alpha != "opaque" else Image.fromarray(rgba[..., :3])
        expected = decode_image(encode(im, "PNG"), "random.png", shape, 10**9)
        got = page.evaluate("""async ([data, width, height, shape]) => {
            const { squash } = await import("/web/pixels.mjs");
            const rgba = Uint8ClampedArray.from(atob(data), (c) => c.charCodeAt(0));
            return Array.from(squash(rgba, width, height, shape));
        }""", [base64.b64encode(rgba.tobytes()).decode(), *size, list(shape)])
        different = int((np.array(got, dtype=np.uint8).reshape(shape) != expected).sum())
        if different:
            mismatches.append((size, alpha, shape, different))
    assert mismatches == []
