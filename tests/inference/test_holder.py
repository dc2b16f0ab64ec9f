"""Readiness and hot swap: not ready without a model, models that fail the golden self-test are refused,
good files are swapped in (once fully copied in), broken ones leave the old model serving, and no request fails
during swaps."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from tests.support.api import parse_metrics, post_files, sha256
from tests.support.images import COLOUR, png
from tests.support.onnx_models import write_model
from tests.support.polling import wait_for
from tests.support.reference import all_probabilities, expected_probabilities


def model_id_served(client) -> str | None:
    response = client.get("/readyz")
    return response.json.get("model_id") if response.status_code == 200 else None


def test_not_ready_without_a_model_then_ready_when_it_appears(make_app, tmp_path):
    path = tmp_path / "later.onnx"
    client = make_app(model_path=path, reload_poll_s=0.02).test_client()
    response = client.get("/readyz")
    assert response.status_code == 503 and "no such file" in response.json["error"].lower()
    predict = post_files(client, [("a.png", png())])
    assert predict.status_code == 503 and "no model is loaded" in predict.json["error"]
    assert client.get("/info").status_code == 503
    assert parse_metrics(client.get("/metrics").get_data(as_text=True))["inference_ready"] == 0
    write_model(path, seed=1)
    assert wait_for(lambda: model_id_served(client), "the model to appear") == sha256(path)
    assert post_files(client, [("a.png", png())]).status_code == 200


def test_a_model_failing_its_golden_self_test_is_never_ready(make_app, tmp_path):
    path = write_model(tmp_path / "wrong.onnx", golden={"seed": 0, "batch": 2, "logits": [[0.0] * 10] * 2})
    response = make_app(model_path=path).test_client().get("/readyz")
    assert response.status_code == 503
    assert "golden self-test" in response.json["error"] and "differ from the parity report" in response.json["error"]


def test_a_model_without_golden_logits_still_gets_the_shape_and_finite_check(make_app, tmp_path):
    path = write_model(tmp_path / "plain.onnx", golden={})
    info = make_app(model_path=path).test_client().get("/info").json
    assert info["self_test"] == {"seed": 0, "batch": 2, "compared_to_parity": False, "reference": "parity"}


def test_hot_swap_to_a_good_model(make_app, model_path, tmp_path):
    client = make_app(reload_poll_s=0.02).test_client()
    old = sha256(model_path)
    assert model_id_served(client) == old
    # a different input size and channel count, as when a TensorFlow-trained file replaces a PyTorch one
    write_model(model_path, seed=5, height=28, width=28, channels=1, framework="tensorflow")
    new = sha256(model_path)
    assert wait_for(lambda: model_id_served(client) == new, "the swap")
    answer = post_files(client, [("a.png", png())], "?top_k=10").json
    assert answer["model_id"] == new
    np.testing.assert_allclose(
        all_probabilities(answer["predictions"][0]), expected_probabilities(COLOUR, 5, (28, 28, 1)), atol=1e-4
    )
    info = client.get("/info").json
    assert info["metadata"]["framework"] == "tensorflow" and info["input"]["channels"] == 1


def _loads(client) -> dict[str, float]:
    m = parse_metrics(client.get("/metrics").get_data(as_text=True))
    return {result: m.get(f'inference_model_loads_total{{result="{result}"}}', 0) for result in ("ok", "refused")}


def _copy_in(path, data: bytes, pieces: int, between) -> None:
    """Write ``data`` over ``path`` in place in ``pieces`` writes, as cp does, calling ``between()`` after each but
    the last (the file then partly written)."""
    size = -(-len(data) // pieces)
    with path.open("r+b") as f:
        f.truncate(0)
        for start in range(0, len(data), size):
            f.write(data[start:start + size])
            f.flush()
            if start + size < len(data):
                between()


def test_the_watcher_waits_while_a_file_is_copied_in_and_swaps_to_the_finished_one(make_app, model_path, tmp_path):
    # the watcher's looks are taken by the test (check_file, what its thread runs every reload_poll_s), one after
    # each piece of the copy: a file that grew since the last look is never loaded
    app = make_app()
    holder, client = app.extensions["inference"], app.test_client()
    old, new = sha256(model_path), write_model(tmp_path / "new.onnx", seed=3)
    before = _loads(client)

    def look():
        holder.check_file()
        assert model_id_served(client) == old and _loads(client) == before, "a partly written file was loaded"

    _copy_in(model_path, new.read_bytes(), 5, look)
    look()  # the finished file, seen once: it may still grow
    holder.check_file()  # unchanged since the last look: loaded
    assert model_id_served(client) == sha256(new) == sha256(model_path)
    assert _loads(client) == {"ok": before["ok"] + 1, "refused": before["refused"]}


def test_a_copy_that_stalls_past_a_look_is_refused_once_then_the_finished_file_is_served(make_app, model_path,
                                                                                          tmp_path):
    # a copy paused for longer than a poll (a slow network disk): the partial file is tried once and refused, the
    # old model keeps serving, and the finished file is loaded
    app = make_app()
    holder, client = app.extensions["inference"], app.test_client()
    old, new = sha256(model_path), write_model(tmp_path / "new.onnx", seed=3)

    def stall():
        holder.check_file()
        holder.check_file()

    _copy_in(model_path, new.read_bytes(), 2, stall)
    assert model_id_served(client) == old and _loads(client)["refused"] == 1
    assert "onnxruntime cannot load it" in client.get("/info").json["last_refused"]
    stall()
    assert model_id_served(client) == sha256(new) and _loads(client)["refused"] == 1


BROKEN_MODELS = {
    "garbage-bytes": (lambda path: path.write_bytes(b"not an onnx file"), "onnxruntime cannot load it"),
    "half-written": (lambda path: path.write_bytes(path.read_bytes()[:300]), "onnxruntime cannot load it"),
    "breaks-the-contract": (lambda path: write_model(path, seed=2, input_name="pixels"), "inputs are ['pixels']"),
    "fails-the-self-test": (
        lambda path: write_model(path, seed=2, golden={"seed": 0, "batch": 2, "logits": [[9.0] * 10] * 2}),
        "golden logits differ",
    ),
}


@pytest.mark.parametrize("case", BROKEN_MODELS)
def test_hot_swap_to_a_broken_model_is_refused_and_the_old_one_keeps_serving(make_app, model_path, case):
    break_it, message = BROKEN_MODELS[case]
    app = make_app(reload_poll_s=0.02)
    client = app.test_client()
    old = sha256(model_path)
    break_it(model_path)
    wait_for(lambda: _loads(client)["refused"], "the broken file to be refused")
    assert model_id_served(client) == old
    answer = post_files(client, [("a.png", png())])
    assert answer.status_code == 200 and answer.json["model_id"] == old
    assert message in client.get("/info").json["last_refused"]
    write_model(model_path, seed=4)  # a good file after a broken one is picked up again
    assert wait_for(lambda: model_id_served(client) == sha256(model_path), "recovery")


def test_no_request_fails_while_models_are_swapped_under_load(make_app, model_path):
    app = make_app(reload_poll_s=0.02, batch_max_wait_ms=1.0)
    stop = threading.Event()
    results: list[tuple[int, str | None]] = []
    lock = threading.Lock()

    def hammer():
        client = app.test_client()
        while not stop.is_set():
            response = post_files(client, [("a.png", png())])
            with lock:
                results.append((response.status_code, (response.json or {}).get("model_id")))

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for t in threads:
        t.start()
    client = app.test_client()
    served = [sha256(model_path)]
    try:
        for seed, size in ((1, 32), (2, 28), (3, 32)):  # each swap also changes the input size
            write_model(model_path, seed=seed, height=size, width=size)
            served.append(sha256(model_path))
            wait_for(lambda: model_id_served(client) == served[-1], f"swap to seed {seed}")
            count = len(results)
            wait_for(lambda: len(results) > count + 4, "requests on the new model")
        model_path.write_bytes(b"broken")
        wait_for(lambda: client.get("/info").json["last_refused"], "the broken file to be refused")
        count = len(results)
        wait_for(lambda: len(results) > count + 4, "requests after the refusal")
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert {status for status, _ in results} == {200}
    assert {model_id for _, model_id in results} <= set(served)
    assert results[-1][1] == served[-1]  # the last good model is still serving after the broken file
