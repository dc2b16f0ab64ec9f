"""What the tiny models of ``onnx_models`` answer for a solid colour, computed in numpy."""

from __future__ import annotations

import numpy as np
from PIL import Image

from tests.support.onnx_models import CIFAR10_LABELS, reference_logits


def softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def expected_probabilities(rgb, seed=0, shape=(32, 32, 3)) -> np.ndarray:
    """What the seed's model answers for an image of one colour ``rgb`` (gray for a 1-channel model)."""
    h, w, c = shape
    pixel = np.asarray(Image.new("RGB", (1, 1), tuple(rgb)).convert("RGB" if c == 3 else "L"), np.uint8)
    image = np.broadcast_to(pixel.reshape(1, 1, 1, c), (1, h, w, c))
    return softmax(reference_logits(image, seed))[0]


def expected_label(colour, seed=0) -> str:
    """The label the seed's 32x32 RGB model gives an image of one colour."""
    return CIFAR10_LABELS[int(expected_probabilities(colour, seed).argmax())]


def all_probabilities(prediction: dict) -> np.ndarray:
    """The prediction's top_k turned back into one probability per label (needs top_k = all classes)."""
    by_label = {entry["label"]: entry["probability"] for entry in prediction["top_k"]}
    return np.array([by_label[label] for label in CIFAR10_LABELS])
