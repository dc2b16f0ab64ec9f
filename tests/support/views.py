"""The TTA views of an image batch built with numpy alone: the reference the networks' views are checked against."""

from __future__ import annotations

import numpy as np


def seen(images: np.ndarray, shift: tuple[int, int], mirrored: bool) -> np.ndarray:
    """[B, H, W, C] mirrored along W if ``mirrored``, then moved ``shift`` = (rows, columns) pixels down and right;
    numpy's "symmetric" padding repeats the edge pixel, as the training shifts reflect."""
    x = images[:, :, ::-1] if mirrored else images
    (dy, dx), (pad_y, pad_x) = shift, (abs(shift[0]), abs(shift[1]))
    padded = np.pad(x, ((0, 0), (pad_y, pad_y), (pad_x, pad_x), (0, 0)), mode="symmetric")
    top, left = pad_y - dy, pad_x - dx
    return np.ascontiguousarray(padded[:, top:top + x.shape[1], left:left + x.shape[2]])
