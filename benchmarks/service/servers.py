"""The servers under load: the naive baseline's app, and the load itself, the servers taking turns."""

from __future__ import annotations

import http.client
import io
import os
from pathlib import Path

import numpy as np
from PIL import Image

from benchmarks.service import Counts
from benchmarks.service.engines import load_torch
from cifar10_pipeline.training.datasets.cifar10 import CIFAR10_CLASSES
from harness.load import Tally, load_round, wrk
from harness.server import Server


def naive_app():  # a factory: the server calls it
    """The baseline: Flask + torch eager, one image per forward pass (``NAIVE_CHECKPOINT`` names the weights)."""
    import torch
    from flask import Flask, jsonify, request

    model = load_torch(Path(os.environ["NAIVE_CHECKPOINT"]))
    app = Flask(__name__)

    @app.post("/predict")
    def predict():
        image = Image.open(io.BytesIO(request.get_data())).convert("RGB").resize((32, 32))
        with torch.no_grad():
            p = torch.softmax(model(torch.from_numpy(np.asarray(image)).unsqueeze(0))[0], dim=0)
        best = int(p.argmax())
        return jsonify(label=CIFAR10_CLASSES[best], probability=float(p[best]))

    @app.get("/readyz")
    def readyz():
        return jsonify(ready=True)

    return app


def batch_totals(server: Server) -> tuple[float, float] | None:
    """(images, onnxruntime calls) so far from the service's /metrics; None for the naive server."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.request("GET", "/metrics")
    response = conn.getresponse()
    if response.status != 200:
        return None
    samples = dict(line.rsplit(" ", 1) for line in response.read().decode().splitlines() if not line.startswith("#"))
    return float(samples["inference_batch_size_sum"]), float(samples["inference_batch_size_count"])


def load_servers(servers: dict[str, Server], body: Path, concurrency: int, counts: Counts) -> list[dict]:
    """Warm every server, then let them take turns for ``counts.rounds`` rounds; one row per server."""
    tallies = {name: Tally() for name in servers}
    for server in servers.values():
        wrk(server.port, body, concurrency, counts.warmup_s)
    batches_before = {name: batch_totals(server) for name, server in servers.items()}
    for _ in range(counts.rounds):
        for name, server in servers.items():
            load_round(server, tallies[name], body, concurrency, counts.round_s)
    rows = []
    for name, server in servers.items():
        before, after = batches_before[name], batch_totals(server)
        rows.append({
            "server": name,
            **tallies[name].summary(),
            "mean_batch_size": (after[0] - before[0]) / (after[1] - before[1]) if before else None,
            "start_to_ready_s": server.start_to_ready_s,
        })
    return rows
