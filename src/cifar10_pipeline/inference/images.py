"""Uploaded bytes -> one uint8 ``[H, W, C]`` array the model takes, or an ApiError saying why not.

The decoding itself is ``contract.images.decode_image``, the one the training data is decoded with; this module
only answers its ImageError with the same HTTP status.
"""

from __future__ import annotations

import numpy as np

from cifar10_pipeline.contract import images
from cifar10_pipeline.contract.images import limit_pixels
from cifar10_pipeline.inference.errors import ApiError

__all__ = ["decode_image", "limit_pixels"]


def decode_image(data: bytes, name: str, shape: tuple[int, int, int], max_pixels: int) -> np.ndarray:
    """``contract.images.decode_image``, its ImageError raised as an ApiError with the same status and message."""
    try:
        return images.decode_image(data, name, shape, max_pixels)
    except images.ImageError as e:
        raise ApiError(e.status, e.message) from e
