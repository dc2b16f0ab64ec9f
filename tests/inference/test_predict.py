"""Classification through /predict: the reference model's answer, top_k, several files, a raw image body; and its
refusals: bodies of other types, forms without a file, a bad top_k, too many files."""

from __future__ import annotations

import io

import numpy as np
import pytest

from tests.support.api import post_files, sha256
from tests.support.images import COLOUR, png
from tests.support.onnx_models import CIFAR10_LABELS
from tests.support.reference import all_probabilities, expected_probabilities


def test_prediction_matches_the_reference_model(client, model_path):
    answer = post_files(client, [("red.png", png())], "?top_k=10").json
    expected = expected_probabilities(COLOUR)
    (prediction,) = answer["predictions"]
    assert answer["model_id"] == prediction["model_id"] == sha256(model_path)
    assert prediction["file"] == "red.png"
    assert prediction["label"] == CIFAR10_LABELS[int(expected.argmax())]
    assert prediction["probability"] == pytest.approx(expected.max(), abs=1e-5)
    np.testing.assert_allclose(all_probabilities(prediction), expected, atol=1e-5)


def test_raw_image_body_is_accepted(client):
    answer = client.post("/predict", data=png(), content_type="image/png").json
    assert answer["predictions"][0]["file"] == "body"
    assert answer["predictions"][0]["label"] == CIFAR10_LABELS[int(expected_probabilities(COLOUR).argmax())]


def test_top_k(client):
    default = post_files(client, [("a.png", png())]).json["predictions"][0]["top_k"]
    assert len(default) == 3
    full = post_files(client, [("a.png", png())], "?top_k=10").json["predictions"][0]["top_k"]
    probabilities = [entry["probability"] for entry in full]
    assert probabilities == sorted(probabilities, reverse=True)
    assert sorted(entry["label"] for entry in full) == sorted(CIFAR10_LABELS)
    assert sum(probabilities) == pytest.approx(1.0, abs=1e-5)
    assert default == full[:3]
    one = post_files(client, [("a.png", png())], "?top_k=1").json["predictions"][0]
    assert one["top_k"] == full[:1] and one["label"] == full[0]["label"]


def test_several_files_in_one_request_keep_their_order(client):
    colours = [COLOUR, (10, 200, 10), (20, 20, 220), (250, 250, 250)]
    files = [(f"img{i}.png", png(c)) for i, c in enumerate(colours)]
    predictions = post_files(client, files, "?top_k=10").json["predictions"]
    assert [p["file"] for p in predictions] == [name for name, _ in files]
    for prediction, colour in zip(predictions, colours):
        np.testing.assert_allclose(all_probabilities(prediction), expected_probabilities(colour), atol=1e-4)


def test_files_under_any_field_name_and_repeated_fields(client):
    data = {"photo": [(io.BytesIO(png()), "a.png"), (io.BytesIO(png()), "b.png")], "x": (io.BytesIO(png()), "c.png")}
    answer = client.post("/predict", data=data, content_type="multipart/form-data").json
    assert sorted(p["file"] for p in answer["predictions"]) == ["a.png", "b.png", "c.png"]


@pytest.mark.parametrize(
    "content_type, body, status, message",
    [
        ("text/plain", b"hello", 415, "Content-Type 'text/plain' is not accepted"),
        ("application/json", b'{"image": 1}', 415, "Content-Type 'application/json' is not accepted"),
        (None, png(), 415, "no Content-Type is not accepted"),
        ("image/png", b"", 400, "the request body is empty"),
        ("image/jpeg", b"\xff\xd8\xff garbage", 415, "'body' is not a PNG, JPEG, GIF, BMP or WebP image"),
        ("multipart/form-data; boundary=xyz", b"--xyz--\r\n", 400, "holds no file"),
    ],
)
def test_bad_bodies_get_a_4xx_saying_what_is_wrong(client, content_type, body, status, message):
    headers = {"Content-Type": content_type} if content_type else {}
    response = client.post("/predict", data=body, headers=headers)
    assert response.status_code == status and message in response.json["error"]


def test_form_without_file_is_refused(client):
    response = client.post("/predict", data={"name": "cat"}, content_type="multipart/form-data")
    assert response.status_code == 400 and "holds no file" in response.json["error"]


@pytest.mark.parametrize("top_k", ["abc", "0", "11", "-1", "2.5", ""])
def test_bad_top_k_is_refused(client, top_k):
    response = post_files(client, [("a.png", png())], f"?top_k={top_k}")
    assert response.status_code == 400
    assert response.json["error"] == f"top_k must be an integer from 1 to 10, got {top_k!r}"


def test_too_many_files_is_413(make_app):
    client = make_app(max_files=3).test_client()
    response = post_files(client, [(f"{i}.png", png()) for i in range(4)])
    assert response.status_code == 413 and response.json["error"] == "4 files in one request, at most 3 accepted"
    assert post_files(client, [(f"{i}.png", png()) for i in range(3)]).status_code == 200
