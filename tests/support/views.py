"""The TTA views of an image batch built with numpy alone: the reference the networks' views are checked against."""

from __future__ import annotations

import numpy as np


def seen(images: np.ndarray, shift: int, mirrored: bool) -> np.ndarray:
    """[B, H, W, C] mirrored along W if ``mirrored``, then moved ``shift`` pixels down and right; numpy's
    "symmetric" padding repeats the edge pixel, as the training shifts reflect."""
    x = images[:, :, ::-1] if mirrored else images
    pad = abs(shift)
    padded = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="symmetric")
    start = pad - shift
    return np.ascontiguousarray(padded[:, start:start + x.shape[1], start:start + x.shape[2]])
