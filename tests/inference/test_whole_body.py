"""What the app hands the HTTP server: an answer held in memory as one list of bytes, which granian writes with the
response's head in one piece: a replica killed mid-answer then leaves no half answer for the balancer to forward."""

from __future__ import annotations

import io
import json

from werkzeug.test import EnvironBuilder

from tests.support.images import png


def wsgi(app, **request) -> tuple[str, object]:
    """Call ``app`` as the HTTP server does: the status it started and the body iterable it returned."""
    started = []
    body = app(EnvironBuilder(**request).get_environ(), lambda status, headers, exc_info=None: started.append(status))
    return started[0], body


def test_answers_are_one_bytes_item_the_server_writes_with_the_head(make_app, model_path):
    app = make_app()
    cases = {
        "predict": dict(path="/predict", method="POST", data={"file": (io.BytesIO(png()), "a.png")}),
        "an error": dict(path="/predict", method="POST", data={}),
        "health": dict(path="/healthz"),
        "metrics": dict(path="/metrics"),
        "the model file": dict(path="/model.onnx"),  # the holder's bytes: in memory too
    }
    answers = {}
    for name, request in cases.items():
        status, body = wsgi(app, **request)
        assert type(body) is list and len(body) == 1 and isinstance(body[0], bytes), (name, type(body))
        answers[name] = status, body[0]
    assert {name: status for name, (status, _) in answers.items()} == {
        "predict": "200 OK", "an error": "415 UNSUPPORTED MEDIA TYPE", "health": "200 OK", "metrics": "200 OK",
        "the model file": "200 OK"}
    assert json.loads(answers["predict"][1])["predictions"][0]["file"] == "a.png"
    assert answers["the model file"][1] == model_path.read_bytes()


def test_a_head_request_gets_its_status_and_no_body(make_app):
    status, body = wsgi(make_app(), path="/healthz", method="HEAD")
    assert status == "200 OK" and list(body) == []
