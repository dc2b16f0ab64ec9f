"""A stuck onnxruntime call: the request waiting for it is answered 503 (JSON) after infer_timeout_s, counted in
/metrics, and the service goes on serving with its other batching threads; images of requests that gave up are
dropped, not run."""

from __future__ import annotations

import threading

import pytest

from cifar10_pipeline.inference.runtime import LoadedModel
from tests.support.api import parse_metrics, post_files
from tests.support.images import png

TIMEOUT_S = 0.5
RELEASE_S = 30.0  # a blocked call is released by the test; this bounds it if the test fails first


@pytest.fixture
def stuck(monkeypatch):
    """LoadedModel.run whose first call blocks until ``release`` is set; every call's batch size is recorded."""
    release, calls, lock = threading.Event(), [], threading.Lock()
    real_run = LoadedModel.run

    def run(model, images):
        with lock:
            first = not calls
            calls.append(len(images))
        if first:
            release.wait(RELEASE_S)
        return real_run(model, images)

    monkeypatch.setattr(LoadedModel, "run", run)
    yield release, calls
    release.set()


def test_a_stuck_call_answers_503_and_the_other_thread_serves_on(make_app, stuck):
    release, calls = stuck
    app = make_app(infer_timeout_s=TIMEOUT_S, batch_workers=2)
    client = app.test_client()
    first = post_files(client, [("a.png", png())])
    assert first.status_code == 503 and first.mimetype == "application/json"
    assert first.json["error"].startswith(f"inference did not finish within {TIMEOUT_S:g} s"), first.json
    # one batching thread is stuck, the other answers
    assert post_files(client, [("b.png", png())]).status_code == 200
    v2 = client.post("/v2/models/classifier/infer", json={"inputs": [
        {"name": "image", "datatype": "UINT8", "shape": [1, 32, 32, 3], "data": [0] * 3072}]})
    assert v2.status_code == 200, v2.json
    m = parse_metrics(client.get("/metrics").get_data(as_text=True))
    assert m["inference_timeouts_total"] == 1
    assert m['inference_requests_total{endpoint="/predict",status="503"}'] == 1
    release.set()


def test_images_of_a_request_that_gave_up_are_dropped_not_run(make_app, stuck):
    release, calls = stuck
    app = make_app(infer_timeout_s=TIMEOUT_S, batch_workers=1)  # the only batching thread gets stuck
    client = app.test_client()
    assert post_files(client, [("a.png", png())]).status_code == 503
    # queued behind the stuck call: it times out too, and its 3 images are cancelled while still queued
    assert post_files(client, [(f"{i}.png", png()) for i in range(3)]).status_code == 503
    release.set()
    assert post_files(client, [("c.png", png())]).status_code == 200
    assert calls == [1, 1]  # the stuck call, then c.png: the 3 cancelled images never reached onnxruntime
    m = parse_metrics(client.get("/metrics").get_data(as_text=True))
    assert m["inference_timeouts_total"] == 2
