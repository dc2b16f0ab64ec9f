"""/metrics of a server with two worker processes (``--workers 2``): whichever worker answers a scrape, it
reports the requests of both, and each worker's model."""

from __future__ import annotations

import time
import urllib.request

import pytest

from harness.server import served
from tests.support.api import parse_metrics
from tests.support.images import png
from tests.support.net import predict
from tests.support.onnx_models import write_model

REQUESTS = 40
LOADS = 'inference_model_loads_total{result="ok"}'
START_S = 60  # how long the second worker may take to load its model after the first is ready


def scrape(base: str) -> dict[str, float]:
    with urllib.request.urlopen(f"{base}/metrics", timeout=30) as response:  # a new connection each time
        return parse_metrics(response.read().decode())


def wait_for_both_workers(base: str) -> None:
    """The server is ready when its first worker is: scrape until both have loaded their model, so that both can
    take requests (a worker still loading takes none, and the test would see one worker)."""
    deadline = time.monotonic() + START_S
    while scrape(base).get(LOADS, 0) < 2:
        assert time.monotonic() < deadline, f"the second worker did not load its model within {START_S} s"
        time.sleep(0.2)


@pytest.mark.slow
def test_two_workers_report_one_coherent_set_of_metrics(tmp_path):
    settings = {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"), "INFERENCE_RELOAD_POLL_S": "0",
                "INFERENCE_MODEL_PATH": str(write_model(tmp_path / "model.onnx", seed=0))}
    with served(settings, tmp_path / "server.log", "--workers", "2", "--threads", "2") as base:
        wait_for_both_workers(base)
        for _ in range(REQUESTS):  # each on a new connection: the kernel spreads them over the workers
            assert predict(base, [("a.png", png())])[0] == 200
        scrapes = [scrape(base) for _ in range(6)]
    for m in scrapes:
        assert m['inference_requests_total{endpoint="/predict",status="200"}'] == REQUESTS
        assert m["inference_batch_size_count"] == REQUESTS
        assert m[LOADS] == 2  # each worker loaded the model once
        assert m["inference_ready"] == 1
        workers = {key.split('pid="')[1].split('"')[0] for key in m if key.startswith("inference_model_info")}
        assert len(workers) == 2, m.keys()
