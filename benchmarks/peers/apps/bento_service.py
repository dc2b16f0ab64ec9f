"""The BentoML 1.4 peer: an ``@bentoml.service`` holding an onnxruntime session (``bentoml.onnx`` is deprecated),
with one endpoint, ``POST /classify``, taking an image upload (multipart field ``image``), decoded with Pillow
and resized to the model's input as the service's /predict does; it answers the label and its probability.

Run by ``benchmarks.peers`` in its own venv: ``bentoml serve bento_service:ImageClassifier --working-dir
benchmarks/peers/apps`` with $BENTOML_HOST/$BENTOML_PORT, $PEER_MODEL_PATH and the tuning from the environment:
$PEER_WORKERS worker processes (BentoML's docs: one per CPU core for CPU-bound work, ``workers="cpu_count"``) and
$PEER_THREADS threads per worker for this synchronous endpoint (BentoML's default: 1).
"""

from __future__ import annotations

import os

import bentoml
import numpy as np
from peer_model import PeerModel
from PIL import Image


@bentoml.service(
    workers=int(os.environ.get("PEER_WORKERS", "1")),
    threads=int(os.environ.get("PEER_THREADS", "1")),
    logging={"access": {"enabled": False}},  # as the service: no access lines
)
class ImageClassifier:
    def __init__(self) -> None:
        self.model = PeerModel()

    @bentoml.api
    def classify(self, image: Image.Image) -> dict:
        m = self.model
        image = image.convert("RGB" if m.channels == 3 else "L").resize((m.width, m.height), Image.Resampling.BILINEAR)
        pixels = np.asarray(image, dtype=np.uint8).reshape(1, m.height, m.width, m.channels)
        logits = m.logits(pixels)[0]
        p = np.exp(logits - logits.max())
        p /= p.sum()
        best = int(p.argmax())
        return {"label": m.labels[best], "probability": float(p[best])}
