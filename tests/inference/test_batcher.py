"""Dynamic batching: concurrent requests share model calls, batches stay bounded, it can be switched off, a
failed call answers its requests with a JSON error while the next calls are served, images of two models gathered
together each run on their own model, and during hot swaps (the GPU image's INFERENCE_BATCH_MAX_SIZE=32) every
answer of /predict and /v2, each client sending its own image, is checked against the model id it names.

No test depends on requests meeting within a time window: one batching thread and a wait far longer than any
test (WAIT_FOR_A_FULL_BATCH_MS) make a batch run exactly when ``batch_max_size`` images are queued."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from onnxruntime.capi.onnxruntime_pybind11_state import RuntimeException

from cifar10_pipeline.inference.batcher import Batcher
from cifar10_pipeline.inference.runtime import LoadedModel
from tests.support.api import parse_metrics, post_files, sha256
from tests.support.images import COLOUR, png
from tests.support.onnx_models import CIFAR10_LABELS, reference_logits, write_model
from tests.support.polling import wait_for
from tests.support.reference import all_probabilities, expected_probabilities
from tests.support.v2 import INFER, image_input, pixels

ANSWER_TIMEOUT_S = 30.0  # far beyond any batch's run here
# a batch that is not full by then runs anyway; far beyond any test, so a batch runs when it is full and only then
# (a request still waiting gets the service's 503 after infer_timeout_s, 30 s: a failure, never a hang)
WAIT_FOR_A_FULL_BATCH_MS = 600_000.0


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


def batch_sizes(app) -> tuple[float, float]:
    """(images, onnxruntime calls) the app's batcher ran, from its metrics."""
    m = parse_metrics(app.test_client().get("/metrics").get_data(as_text=True))
    return m["inference_batch_size_sum"], m["inference_batch_size_count"]


def test_concurrent_requests_are_batched(make_app):
    app = make_app(batch_max_size=8, batch_max_wait_ms=WAIT_FOR_A_FULL_BATCH_MS, batch_workers=1)
    responses = concurrent_posts(app.test_client, 8)
    assert [r.status_code for r in responses] == [200] * 8
    assert batch_sizes(app) == (8, 1)  # one call for the 8 requests
    labels = {r.json["predictions"][0]["label"] for r in responses}
    assert labels == {CIFAR10_LABELS[int(expected_probabilities(COLOUR).argmax())]}


def test_each_request_gets_the_answer_for_its_own_image_from_a_shared_batch(make_app):
    # a colour per client, all in one call: a batch's rows handed back in another order give a client another's answer
    app = make_app(batch_max_size=8, batch_max_wait_ms=WAIT_FOR_A_FULL_BATCH_MS, batch_workers=1)
    colours = [(255 - 30 * i, 40 * i % 256, 25 + 28 * i) for i in range(8)]
    responses = concurrent_posts(app.test_client, 8, [png(colour) for colour in colours], "?top_k=10")
    assert [r.status_code for r in responses] == [200] * 8
    assert batch_sizes(app) == (8, 1)
    for colour, response in zip(colours, responses):
        np.testing.assert_allclose(all_probabilities(response.json["predictions"][0]), expected_probabilities(colour),
                                   atol=1e-5)


def test_batches_are_bounded(make_app):
    app = make_app(batch_max_size=3, batch_max_wait_ms=WAIT_FOR_A_FULL_BATCH_MS, batch_workers=1)
    assert [r.status_code for r in concurrent_posts(app.test_client, 9)] == [200] * 9
    assert batch_sizes(app) == (9, 3)  # three calls of at most 3 for 9 images: 3 each


class _Recording:
    """A stand-in for a LoadedModel: records the batches it runs, answers each image with its first pixel plus
    ``offset`` (so a row tells which image and which model made it)."""

    def __init__(self, offset: float):
        self.offset, self.batches = offset, []

    def run(self, images: np.ndarray) -> np.ndarray:
        self.batches.append(images[:, 0, 0, 0].tolist())
        return images[:, 0, 0, :1].astype(np.float32) + self.offset


def test_images_of_two_models_gathered_together_each_run_on_their_own_model():
    # as when a swap lands while a batch gathers: images decoded for the old and for the new model, interleaved
    sizes = []
    batcher = Batcher(max_size=6, max_wait_s=WAIT_FOR_A_FULL_BATCH_MS / 1000, workers=1, on_batch=sizes.append)
    old, new = _Recording(0.0), _Recording(1000.0)
    try:
        models = [old, new, old, new, new, old]
        futures = [batcher.submit(model, np.full((2, 2, 3), i, np.uint8)) for i, model in enumerate(models)]
        rows = [f.result(timeout=ANSWER_TIMEOUT_S).tolist() for f in futures]
    finally:
        batcher.close()
    assert old.batches == [[0, 2, 5]] and new.batches == [[1, 3, 4]] and sorted(sizes) == [3, 3]
    assert rows == [[i + (1000.0 if model is new else 0.0)] for i, model in enumerate(models)]


def test_batching_off_runs_one_call_per_request(make_app):
    app = make_app(batch_max_size=1)
    assert all(r.status_code == 200 for r in concurrent_posts(app.test_client, 6))
    m = parse_metrics(app.test_client().get("/metrics").get_data(as_text=True))
    assert m['inference_batch_size_bucket{le="1.0"}'] == m["inference_batch_size_count"] == 6


@pytest.mark.parametrize("batch_max_size", [6, 1])
def test_an_onnxruntime_failure_answers_its_whole_batch_with_json_and_serving_goes_on(make_app, monkeypatch,
                                                                                     batch_max_size):
    # one batching thread waiting for a full batch: with batching on, the 6 requests released together are one
    # call, and it fails; with it off, the first of 6 calls fails
    app = make_app(batch_max_size=batch_max_size, batch_max_wait_ms=WAIT_FOR_A_FULL_BATCH_MS, batch_workers=1)
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
    assert len(errors) == failed[0] == batch_max_size  # every request of the failed call, and only those
    for r in errors:
        assert r.status_code == 500 and r.mimetype == "application/json"
        assert r.json == {"error": "internal error: RuntimeException"}
    # the batching thread survived: the next requests, batched again, are all answered
    again = concurrent_posts(app.test_client, 6)
    assert [r.status_code for r in again] == [200] * 6
    assert failed[1:] == [batch_max_size] * (12 // batch_max_size - 1)


# two models of the same input shape, different weights: mixing them up gives no error, only wrong logits
CLIENTS = 8
SWAPS = 8
SEEDS = (1, 2)
COLOURS = [(255 - 30 * i, 40 * i % 256, 25 + 28 * i) for i in range(CLIENTS)]  # client i's image on /predict


def _predict(client, i: int) -> tuple[int, str | None, np.ndarray | None]:
    response = post_files(client, [(f"{i}.png", png(COLOURS[i]))], "?top_k=10")
    if response.status_code != 200:
        return response.status_code, None, None
    prediction = response.json["predictions"][0]
    assert prediction["model_id"] == response.json["model_id"]
    return 200, response.json["model_id"], all_probabilities(prediction)


def _v2(client, i: int) -> tuple[int, str | None, np.ndarray | None]:
    response = client.post(INFER, json={"inputs": [image_input(pixels(1, seed=i))]})
    if response.status_code != 200:
        return response.status_code, None, None
    return 200, response.json["model_version"], np.asarray(response.json["outputs"][0]["data"])


ROUTES = {
    # route: (one request of client i -> (status, the model id the answer names, its numbers),
    #         what the model of ``seed`` answers client i)
    "predict": (_predict, lambda i, seed: expected_probabilities(COLOURS[i], seed)),
    "v2": (_v2, lambda i, seed: reference_logits(pixels(1, seed=i), seed)[0]),
}


@pytest.mark.parametrize("route", ROUTES)
def test_every_answer_during_swaps_with_batching_comes_from_the_model_it_names(make_app, model_path, tmp_path,
                                                                               route):
    # the clients send in rounds, one request each, and the batcher runs a call when all CLIENTS images are queued:
    # a round that a swap splits is one gathering of images for both models, and a round after a swap one call
    # of CLIENTS images on the new model. Swaps are the watcher's reload, called here
    ask, expected_answer = ROUTES[route]
    write_model(model_path, seed=SEEDS[0])
    app = make_app(batch_max_size=CLIENTS, batch_max_wait_ms=WAIT_FOR_A_FULL_BATCH_MS, batch_workers=1)
    holder = app.extensions["inference"]
    seed_of = {sha256(model_path): SEEDS[0]}  # model id -> seed
    answers: list[tuple[int, int, str | None, np.ndarray | None]] = []  # (client, status, model id, numbers)
    lock, stop, decided = threading.Lock(), threading.Event(), [False]
    # the barrier's action runs once per round before any client goes on: all clients stop in the same round
    rounds = threading.Barrier(CLIENTS, action=lambda: decided.__setitem__(0, stop.is_set()),
                               timeout=ANSWER_TIMEOUT_S)

    def hammer(i: int) -> None:
        own = app.test_client()
        while True:
            rounds.wait()
            if decided[0]:
                return
            answer = ask(own, i)
            with lock:
                answers.append((i, *answer))

    threads = [threading.Thread(target=hammer, args=(i,), daemon=True) for i in range(CLIENTS)]
    for t in threads:
        t.start()
    try:
        for swap in range(1, SWAPS + 1):
            seed = SEEDS[swap % 2]
            write_model(tmp_path / "next.onnx", seed=seed).replace(model_path)
            assert holder.reload()
            seed_of[sha256(model_path)] = seed
            count = len(answers)  # a round that starts from now on is all on the new model
            wait_for(lambda count=count: len(answers) > count + CLIENTS, f"a round after swap {swap}")
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=ANSWER_TIMEOUT_S)
    assert not any(t.is_alive() for t in threads), "a client never got its answer"

    assert len(seed_of) == 2
    assert [status for _, status, _, _ in answers] == [200] * len(answers)
    for i, _, model_id, numbers in answers:
        assert model_id in seed_of
        np.testing.assert_allclose(numbers, expected_answer(i, seed_of[model_id]), rtol=1e-5, atol=1e-5)
    assert {model_id for _, _, model_id, _ in answers} == set(seed_of)  # both models answered
    images, calls = batch_sizes(app)
    assert images == len(answers) and calls < images  # batches of 2+ images ran
