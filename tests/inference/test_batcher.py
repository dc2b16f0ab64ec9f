"""Dynamic batching: concurrent requests share model calls, batches stay bounded, it can be switched off, a
failed call answers its requests with a JSON error while the next calls are served, images of two models gathered
together each run on their own model, and during hot swaps (the GPU image's INFERENCE_BATCH_MAX_SIZE=32) every
answer of /predict and /v2, each client sending its own image, is checked against the model id it names.

No test depends on requests meeting within a time window: one batching thread and a wait far longer than any
test (WAIT_FOR_A_FULL_BATCH_MS) make a batch run exactly when ``batch_max_size`` images are queued."""

from __future__ import annotations

import queue
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


# The Batcher itself, on a model that echoes its images: which images share a call, in which order, on which model,
# how long one waits, and what cancelling, a failing call and close() do.

class Echo:
    """A model whose logits row is its image's pixels plus ``offset``; it records each call's images, and the first
    call can be held (``hold``) until the test releases it, so that the next images queue up meanwhile."""

    def __init__(self, offset: float = 0.0, hold: bool = False, fail: bool = False):
        self.offset, self.fail, self.calls = offset, fail, []
        self.entered, self.release = threading.Event(), threading.Event()
        if not hold:
            self.release.set()

    def run(self, images: np.ndarray) -> np.ndarray:
        self.calls.append(images[:, 0, 0, 0].tolist())
        self.entered.set()
        assert self.release.wait(ANSWER_TIMEOUT_S)
        if self.fail:
            raise RuntimeError("injected")
        return images.reshape(len(images), -1).astype(np.float32) + self.offset


def pixel(value: int) -> np.ndarray:
    return np.full((2, 2, 1), value, np.uint8)


def row(value: int, offset: float = 0.0) -> list[float]:
    return [value + offset] * 4


def close_within_bound(batcher: Batcher) -> None:
    closer = threading.Thread(target=batcher.close, daemon=True)
    closer.start()
    closer.join(ANSWER_TIMEOUT_S)
    assert not closer.is_alive(), "close() did not return: a batching thread never stopped"


@pytest.fixture
def batcher():
    made = []

    def make(max_size: int = 8, max_wait_s: float = 0.05, workers: int = 1) -> tuple[Batcher, list[int]]:
        sizes: list[int] = []
        made.append(Batcher(max_size, max_wait_s, workers, sizes.append))
        return made[-1], sizes

    yield make
    for b in made:
        close_within_bound(b)


def test_an_image_alone_is_answered_with_its_own_row_after_the_wait(batcher):
    b, sizes = batcher()
    model = Echo()
    assert b.submit(model, pixel(7)).result(ANSWER_TIMEOUT_S).tolist() == row(7)
    assert model.calls == [[7]] and sizes == [1]


def test_images_that_queue_meanwhile_share_calls_in_order_and_bounded(batcher):
    b, sizes = batcher(max_size=3)
    model = Echo(hold=True)
    first = b.submit(model, pixel(0))
    assert model.entered.wait(ANSWER_TIMEOUT_S)  # the worker runs image 0 alone and is held there
    futures = [b.submit(model, pixel(i)) for i in range(1, 6)]
    model.release.set()
    assert [f.result(ANSWER_TIMEOUT_S).tolist() for f in [first, *futures]] == [row(i) for i in range(6)]
    assert model.calls == [[0], [1, 2, 3], [4, 5]] and sizes == [1, 3, 2]


def test_images_of_two_models_gathered_together_each_run_on_their_own(batcher):
    b, sizes = batcher()
    old, new = Echo(hold=True), Echo(offset=100.0)
    b.submit(old, pixel(0))
    assert old.entered.wait(ANSWER_TIMEOUT_S)
    futures = [b.submit(model, pixel(i)) for i, model in enumerate([old, new, old, new], start=1)]
    old.release.set()
    results = [f.result(ANSWER_TIMEOUT_S).tolist() for f in futures]
    assert results == [row(1), row(2, 100.0), row(3), row(4, 100.0)]
    assert old.calls == [[0], [1, 3]] and new.calls == [[2, 4]] and sizes == [1, 2, 2]


def test_an_image_whose_request_gave_up_while_queued_is_never_run(batcher):
    b, sizes = batcher()
    model = Echo(hold=True)
    b.submit(model, pixel(0))
    assert model.entered.wait(ANSWER_TIMEOUT_S)
    gave_up, kept = b.submit(model, pixel(1)), b.submit(model, pixel(2))
    assert gave_up.cancel()
    model.release.set()
    assert kept.result(ANSWER_TIMEOUT_S).tolist() == row(2) and gave_up.cancelled()
    assert model.calls == [[0], [2]] and sizes == [1, 1]


def test_a_failing_call_fails_its_images_logs_and_the_worker_goes_on(batcher, caplog):
    b, sizes = batcher()
    broken, model = Echo(hold=True, fail=True), Echo()
    futures = [b.submit(broken, pixel(0))]
    assert broken.entered.wait(ANSWER_TIMEOUT_S)
    futures.append(b.submit(broken, pixel(1)))
    broken.release.set()
    for f in futures:
        with pytest.raises(RuntimeError, match="injected"):
            f.result(ANSWER_TIMEOUT_S)
    assert b.submit(model, pixel(5)).result(ANSWER_TIMEOUT_S).tolist() == row(5)
    assert sizes == [1]  # only the call that answered counts as a batch
    failures = [r for r in caplog.records if r.name == "cifar10_pipeline.inference.batcher"]
    assert [r.getMessage() for r in failures] == ["batch of 1 failed", "batch of 1 failed"]
    assert all(r.levelname == "ERROR" and r.exc_info for r in failures)


def test_the_wait_for_others_never_exceeds_max_wait(batcher, monkeypatch):
    # an image alone waits max_wait_s at most: every wait the workers make for a next image is bounded by it
    waits: list[float | None] = []

    class RecordingQueue(queue.Queue):
        def get(self, block=True, timeout=None):
            waits.append(timeout)
            return super().get(block, timeout)

    monkeypatch.setattr(queue, "Queue", RecordingQueue)
    b, _ = batcher(max_size=8, max_wait_s=0.2)
    model = Echo()
    for i in range(3):
        assert b.submit(model, pixel(i)).result(ANSWER_TIMEOUT_S).tolist() == row(i)
    bounded = [w for w in waits if w is not None]  # None: a worker waiting for its batch's first image
    assert len(bounded) >= 3 and all(0.0 <= w <= 0.2 for w in bounded), waits


def test_close_runs_what_is_gathered_and_stops_every_worker(batcher):
    # a wait far beyond the test's bound: only close() can end the gathering of these three images
    b, sizes = batcher(max_wait_s=600.0, workers=2)
    model = Echo()
    futures = [b.submit(model, pixel(i)) for i in range(3)]
    close_within_bound(b)
    assert [f.result(0).tolist() for f in futures] == [row(i) for i in range(3)]
    # which worker gathered which image is the threads' race: each image ran once, in a call that counted
    assert sorted(i for call in model.calls for i in call) == [0, 1, 2] and sum(sizes) == 3


def test_the_workers_are_named_daemon_threads(batcher):
    # named for thread dumps and log records; daemons, so that they never keep a stopping process alive
    before = set(threading.enumerate())
    batcher(workers=2)
    workers = [t for t in threading.enumerate() if t not in before]
    assert sorted(t.name for t in workers) == ["inference-batcher-0", "inference-batcher-1"]
    assert all(t.daemon and t.is_alive() for t in workers)
