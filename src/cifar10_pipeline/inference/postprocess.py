"""Logits -> answers: the one top-k of the service, the ranked labels with probabilities that /predict and
``cifar10-predict`` write, shared with the v2 classification extension."""

from __future__ import annotations

from typing import Any

import numpy as np


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices ``[N, k]`` of the ``k`` highest of each row of ``scores`` ``[N, classes]``, best first; ties keep
    the class order."""
    return np.argsort(-scores, axis=1, kind="stable")[:, :k]


def softmax(logits: np.ndarray) -> np.ndarray:
    """Probabilities ``[N, classes]`` from logits ``[N, classes]``, stable for any logit scale."""
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    return exp / exp.sum(axis=1, keepdims=True)


def rank(logits: np.ndarray, labels: tuple[str, ...], k: int) -> list[dict[str, Any]]:
    """Per row of float logits ``[N, classes]``: the best label, its softmax probability, and the ``k`` best
    ``{"label", "probability"}`` in order (ties keep the label order)."""
    probabilities = softmax(logits)
    return [{"label": labels[best[0]], "probability": float(p[best[0]]),
             "top_k": [{"label": labels[i], "probability": float(p[i])} for i in best]}
            for p, best in zip(probabilities, top_k(probabilities, k))]
