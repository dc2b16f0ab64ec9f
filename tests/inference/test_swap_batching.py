"""Hot swaps under load with batching on (the GPU image's INFERENCE_BATCH_MAX_SIZE=32): the batcher gathers
images decoded for the old model and for the new one in the same window, and must run each on its own model.
Every answer's logits are checked against the model id it names."""

from __future__ import annotations

import threading

import numpy as np

from tests.support.api import parse_metrics, post_files, sha256
from tests.support.images import COLOUR, png
from tests.support.onnx_models import write_model
from tests.support.polling import wait_for
from tests.support.reference import all_probabilities, expected_probabilities

CLIENTS = 8
SWAPS = 8
# two models of the same input shape, different weights: mixing them up gives no error, only wrong logits
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
