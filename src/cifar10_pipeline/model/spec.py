"""The network's arguments, framework-neutral: both frameworks build the same CNN from one ``ModelSpec``.

Edges to shapes to objects: a stem conv, then three blocks of conv + BatchNorm + ReLU with a 2x2 max-pool
between their two convs (resolution 32 -> 16 -> 8 -> 4), a global max-pool, Dropout, and a linear classifier.
BatchNorm's scale is fixed at 1, so the pooled conv may pool before or after BatchNorm + ReLU: training pools
first (cheaper), inference last (foldable).
The input is the contract's raw ``uint8 [B, H, W, C]`` image, so the exported graph carries all preprocessing
(scale, mean/std, layout). With ``tta`` (test-time augmentation) the eval-mode model averages the logits of each
image and its mirror, and with ``tta_shift`` also those of the image shifted diagonally both ways, or along each
axis both ways with ``tta_shift_axes`` (``tta_views``), so the exported graph does it too and every client gets it for
free.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

# a field's former name -> its name, so that the spec dicts of older PyTorch model files still load
FORMER_NAMES = {"flip_tta": "tta"}


@dataclass(frozen=True)
class ModelSpec:
    """Everything that builds the network; stored with every saved model so a file rebuilds its own."""

    image_shape: tuple[int, int, int]  # (H, W, C) of the uint8 input
    num_classes: int
    mean: tuple[float, ...]  # per channel, pixel units (0..255)
    std: tuple[float, ...]
    width: int  # channels of the first block; the blocks have width, 2 * width, 4 * width
    dropout: float
    tta: bool  # test-time augmentation: in eval mode, the mean logits of the image and its horizontal mirror
    # and of the image shifted by this many pixels (reflection padding) down-right and up-left, or along the axes
    # (tta_shift_axes); 0: not shifted; a default, so that the spec dicts of model files written before the field
    # still load
    tta_shift: int = 0
    # the shifted views move the image along each axis (down, up, right, left) instead of diagonally (down-right,
    # up-left); a default for the same reason
    tta_shift_axes: bool = False

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ModelSpec:
        """The spec ``to_dict`` wrote; older PyTorch model files name its TTA field ``flip_tta``."""
        values = {FORMER_NAMES.get(k, k): v for k, v in values.items()}
        return cls(**{**values, **{k: tuple(values[k]) for k in ("image_shape", "mean", "std")}})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def tta_views(self) -> list[tuple[tuple[int, int], bool, float]]:
        """The eval-mode model's views of an image as ((rows, columns) shift in pixels, mirrored, weight): logits =
        the weighted sum of the body's logits over them. Diagonal shifts: the unshifted image (and its mirror) weigh
        as much as the two shifted ones together, for a diagonal shift loses a row and a column to the reflected
        border. Shifts along the axes (``tta_shift_axes``) lose one row or one column: every view weighs the same."""
        s = self.tta_shift
        if not s:
            shifts = [((0, 0), 1.0)]
        elif self.tta_shift_axes:
            shifts = [((0, 0), 1.0), ((s, 0), 1.0), ((-s, 0), 1.0), ((0, s), 1.0), ((0, -s), 1.0)]
        else:
            shifts = [((0, 0), 1.0), ((-s, -s), 0.5), ((s, s), 0.5)]
        mirrors = [False, True] if self.tta else [False]
        total = sum(w for _, w in shifts) * len(mirrors)
        return [(shift, mirrored, weight / total) for shift, weight in shifts for mirrored in mirrors]


def reflected(i: Any, n: int) -> Any:
    """Position ``i`` (an int, or an int tensor of positions) of an axis of ``n`` pixels, reflected at its edges as
    training's reflection padding reflects (-1 -> 0, n -> n - 1): with r = i mod 2n, min(r, 2n - 1 - r), written
    with ``%``, ``abs`` and ``//`` only, so that ints and tensors alike take it."""
    r = i % (2 * n)
    return (2 * n - 1 - abs(2 * r - (2 * n - 1))) // 2


def shifted_index(n: int, shift: int) -> list[int]:
    """For each of ``n`` positions along an axis, the position it reads when the image moves ``shift`` pixels along
    it, reflected at the edges as the training shifts reflect (``reflected``): a constant gather index."""
    return [reflected(i - shift, n) for i in range(n)]


@contextlib.contextmanager
def pooling_last_blocks(blocks: Iterable[Any]) -> Iterator[None]:
    """Every one of ``blocks`` (either framework's ConvPool) pools last while the context lasts: the graph the ONNX
    export traces."""
    blocks = list(blocks)
    for block in blocks:
        block.pool_last = True
    try:
        yield
    finally:
        for block in blocks:
            block.pool_last = False
