"""Dynamic batching: concurrent requests share model calls, batches stay bounded, and it can be switched off."""

from __future__ import annotations

import threading

from tests.support.api import parse_metrics, post_files
from tests.support.images import COLOUR, png
from tests.support.onnx_models import CIFAR10_LABELS
from tests.support.reference import expected_probabilities


def concurrent_posts(client_factory, n: int) -> list:
    """``n`` requests released at once by a barrier, each from its own thread and client."""
    barrier = threading.Barrier(n)
    responses = [None] * n

    def one(i):
        client = client_factory()
        barrier.wait()
        responses[i] = post_files(client, [(f"{i}.png", png())])

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return responses


def test_concurrent_requests_are_batched(make_app):
    # the first image waits up to 500 ms for others: long enough that 8 requests released together meet
    app = make_app(batch_max_size=32, batch_max_wait_ms=500.0)
    responses = concurrent_posts(app.test_client, 8)
    assert [r.status_code for r in responses] == [200] * 8
    m = parse_metrics(app.test_client().get("/metrics").get_data(as_text=True))
    assert m["inference_batch_size_sum"] == 8
    assert m['inference_batch_size_bucket{le="1.0"}'] < m["inference_batch_size_count"]  # a batch of 2+ ran
    labels = {r.json["predictions"][0]["label"] for r in responses}
    assert labels == {CIFAR10_LABELS[int(expected_probabilities(COLOUR).argmax())]}


def test_batches_are_bounded(make_app):
    app = make_app(batch_max_size=3, batch_max_wait_ms=500.0)
    assert all(r.status_code == 200 for r in concurrent_posts(app.test_client, 8))
    m = parse_metrics(app.test_client().get("/metrics").get_data(as_text=True))
    assert m["inference_batch_size_sum"] == 8 and m['inference_batch_size_bucket{le="4.0"}'] == m["inference_batch_size_count"]
    assert m["inference_batch_size_count"] >= 3  # 8 images in batches of at most 3


def test_batching_off_runs_one_call_per_request(make_app):
    app = make_app(batch_max_size=1)
    assert all(r.status_code == 200 for r in concurrent_posts(app.test_client, 6))
    m = parse_metrics(app.test_client().get("/metrics").get_data(as_text=True))
    assert m['inference_batch_size_bucket{le="1.0"}'] == m["inference_batch_size_count"] == 6
