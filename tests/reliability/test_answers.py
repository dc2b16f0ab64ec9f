"""Every answer under load is checked (reliability.serving): an answer counts as right only when it is the named
model's own prediction for the upload (model id on the answer and on its prediction, top label, probability), and a
model that is none of the good files never counts."""

from __future__ import annotations

import json

from reliability.serving import prediction_problem, wrong_answers

OLD, NEW = "a" * 64, "b" * 64
EXPECTED = {OLD: {"model_id": OLD, "label": "cat", "probability": 0.61},
            NEW: {"model_id": NEW, "label": "dog", "probability": 0.52}}


def answer(model_id: str, label: str, probability: float, predicted_by: str | None = None) -> str:
    top = {"file": "body", "label": label, "probability": probability, "model_id": predicted_by or model_id}
    return json.dumps({"model_id": model_id, "predictions": [top]})


def test_an_answer_is_right_only_with_its_models_label_and_probability():
    assert prediction_problem(answer(OLD, "cat", 0.61), EXPECTED[OLD]) is None
    assert prediction_problem(answer(OLD, "cat", 0.61 + 5e-5), EXPECTED[OLD]) is None  # float noise
    assert "expected cat" in prediction_problem(answer(OLD, "dog", 0.61), EXPECTED[OLD])
    assert "expected cat p=0.6100" in prediction_problem(answer(OLD, "cat", 0.62), EXPECTED[OLD])
    assert "model bbbbbbbbbbbb" in prediction_problem(answer(NEW, "cat", 0.61), EXPECTED[OLD])
    assert "model" in prediction_problem(answer(OLD, "cat", 0.61, predicted_by=NEW), EXPECTED[OLD])
    assert "not /predict's answer" in prediction_problem("<html>busy</html>", EXPECTED[OLD])


def test_wrong_answers_are_counted_per_request_and_right_ones_per_model():
    bodies = [
        {"status": 200, "body": answer(OLD, "cat", 0.61), "count": 40},
        {"status": 200, "body": answer(NEW, "dog", 0.52), "count": 30},
        {"status": 200, "body": answer(NEW, "cat", 0.61), "count": 2},  # the new model with the old one's answer
        {"status": 200, "body": answer("c" * 64, "cat", 0.61), "count": 1},  # a broken file's id
        {"status": 503, "body": "no model", "count": 9},  # failed, counted by the load
    ]
    wrong, why, right = wrong_answers(bodies, EXPECTED)
    assert wrong == 3 and len(why) == 2 and why[0].startswith("2 x ") and "none of the good files" in why[1]
    assert right == {OLD: 40, NEW: 30}
