"""Dynamic batching: concurrent requests share model calls, batches stay bounded, it can be switched off, a
failed call answers its requests with a JSON error while the next calls are served, and during hot swaps (the GPU
image's INFERENCE_BATCH_MAX_SIZE=32) images decoded for the old model and for the new one, gathered in the same
window, each run on their own model: every answer's logits are checked against the model id it names."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from onnxruntime.capi.onnxruntime_pybind11_state import RuntimeException

from cifar10_pipeline.inference.runtime import LoadedModel
from tests.support.api import parse_metrics, post_files, sha256
from tests.support.images import COLOUR, png
from tests.support.onnx_models import CIFAR10_LABELS, write_model
from tests.support.polling import wait_for
from tests.support.reference import all_probabilities, expected_probabilities

ANSWER_TIMEOUT_S = 30.0  # far beyond any batch's wait and run here


def concurrent_posts(client_factory, n: int, images: list[bytes] | None = None, query: str = "") -> list:
    """``n`` requests released at once by a barrier, each from its own thread and client, request i posting
    ``images[i]`` (default: the test colour's PNG); None for a request not answered within ANSWER_TIMEOUT_S."""
    barrier = threading.Barrier(n)
    responses = [None] * n
    images = images or [png()] * n

    def one(i):
        client = client_factory()
        barrier.wait()
        responses[i] = post_files(client, [(f"{i}.png", images[i])], query)

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


def test_each_request_gets_the_answer_for_its_own_image_from_a_shared_batch(make_app):
    # a colour per client: a batch's rows handed back in another order would give a client another's answer
    app = make_app(batch_max_size=32, batch_max_wait_ms=500.0)
    colours = [(255 - 30 * i, 40 * i % 256, 25 + 28 * i) for i in range(8)]
    responses = concurrent_posts(app.test_client, 8, [png(colour) for colour in colours], "?top_k=10")
    assert [r.status_code for r in responses] == [200] * 8
    for colour, response in zip(colours, responses):
        np.testing.assert_allclose(all_probabilities(response.json["predictions"][0]), expected_probabilities(colour),
                                   atol=1e-5)
    m = parse_metrics(app.test_client().get("/metrics").get_data(as_text=True))
    assert m['inference_batch_size_bucket{le="1.0"}'] < m["inference_batch_size_count"]  # a batch of 2+ ran


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


# two models of the same input shape, different weights: mixing them up gives no error, only wrong logits
CLIENTS = 8
SWAPS = 8
SEEDS = (1, 2)


def test_every_answer_during_swaps_with_batching_comes_from_the_model_it_names(make_app, model_path):
    write_model(model_path, seed=SEEDS[0])
    # a wait of 20 ms gathers requests released on both sides of a swap into one batch
    app = make_app(reload_poll_s=0.02, batch_max_size=32, batch_max_wait_ms=20.0)
    expected = {}  # model id -> the probabilities its model gives the test colour
    stop = threading.Event()
    answers: list[tuple[int, dict]] = []
    lock = threading.Lock()

    def hammer():
        client = app.test_client()
        while not stop.is_set():
            response = post_files(client, [("a.png", png())], "?top_k=10")
            with lock:
                answers.append((response.status_code, response.json))

    client = app.test_client()
    expected[sha256(model_path)] = expected_probabilities(COLOUR, SEEDS[0])
    threads = [threading.Thread(target=hammer) for _ in range(CLIENTS)]
    for t in threads:
        t.start()
    try:
        for swap in range(1, SWAPS + 1):
            seed = SEEDS[swap % 2]
            write_model(model_path, seed=seed)
            model_id = sha256(model_path)
            expected[model_id] = expected_probabilities(COLOUR, seed)
            wait_for(lambda model_id=model_id: client.get("/readyz").json.get("model_id") == model_id,
                     f"swap {swap} to seed {seed}")
            count = len(answers)
            wait_for(lambda count=count: len(answers) > count + CLIENTS, "requests on the new model")
    finally:
        stop.set()
        for t in threads:
            t.join()

    assert len(expected) == 2
    assert [status for status, _ in answers] == [200] * len(answers), [a for s, a in answers if s != 200][:3]
    served = set()
    for _, answer in answers:
        prediction = answer["predictions"][0]
        assert prediction["model_id"] == answer["model_id"] in expected
        np.testing.assert_allclose(all_probabilities(prediction), expected[answer["model_id"]], atol=1e-5)
        served.add(answer["model_id"])
    assert served == set(expected)  # both models answered
    m = parse_metrics(client.get("/metrics").get_data(as_text=True))
    assert m["inference_batch_size_sum"] > m["inference_batch_size_count"]  # batches of 2+ images ran
