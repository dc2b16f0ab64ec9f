"""Dynamic batching: concurrent requests share model calls, batches stay bounded, it can be switched off, and a
failed call answers its requests with a JSON error while the next calls are served."""

from __future__ import annotations

import threading
import time

import pytest
from onnxruntime.capi.onnxruntime_pybind11_state import RuntimeException

from cifar10_pipeline.inference.runtime import LoadedModel
from tests.support.api import parse_metrics, post_files
from tests.support.images import COLOUR, png
from tests.support.onnx_models import CIFAR10_LABELS
from tests.support.reference import expected_probabilities

ANSWER_TIMEOUT_S = 30.0  # far beyond any batch's wait and run here


def concurrent_posts(client_factory, n: int) -> list:
    """``n`` requests released at once by a barrier, each from its own thread and client; None for a request
    not answered within ANSWER_TIMEOUT_S."""
    barrier = threading.Barrier(n)
    responses = [None] * n

    def one(i):
        client = client_factory()
        barrier.wait()
        responses[i] = post_files(client, [(f"{i}.png", png())])

    # daemon threads joined with a bound: a request never answered fails the test (None) instead of hanging it
    threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + ANSWER_TIMEOUT_S
    for t in threads:
        t.join(timeout=max(deadline - time.monotonic(), 0))
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


@pytest.mark.parametrize("batch_max_size", [32, 1])
def test_an_onnxruntime_failure_answers_its_whole_batch_with_json_and_serving_goes_on(make_app, monkeypatch,
                                                                                     batch_max_size):
    # one batching thread and a long wait: the 6 requests released together are one batch, and it fails
    app = make_app(batch_max_size=batch_max_size, batch_max_wait_ms=500.0, batch_workers=1)
    real_run, lock, failed = LoadedModel.run, threading.Lock(), []

    def run_failing_once(model, images):
        with lock:
            fail = not failed
            failed.append(len(images))
        if fail:
            raise RuntimeException("[ONNXRuntimeError] : 6 : RUNTIME_EXCEPTION : injected in the middle of a batch")
        return real_run(model, images)

    monkeypatch.setattr(LoadedModel, "run", run_failing_once)
    responses = concurrent_posts(app.test_client, 6)
    assert None not in responses, "a request of the failed batch was never answered"
    errors = [r for r in responses if r.status_code != 200]
    assert len(errors) == failed[0] >= (2 if batch_max_size > 1 else 1)  # every request of the failed call
    for r in errors:
        assert r.status_code == 500 and r.mimetype == "application/json"
        assert r.json == {"error": "internal error: RuntimeException"}
    # the batching thread survived: the next requests, batched again, are all answered
    again = concurrent_posts(app.test_client, 6)
    assert [r.status_code for r in again] == [200] * 6
    assert len(failed) > 1 and sum(failed[1:]) == 12 - len(errors)
