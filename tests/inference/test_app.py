"""The app factory: one blueprint per area (ops, predict, v2), one model holder that every route reaches through
``current_holder()``."""

from __future__ import annotations

import pytest
from flask import Flask

from cifar10_pipeline.inference.errors import ApiError
from cifar10_pipeline.inference.holder import ModelHolder, current_holder, current_model
from tests.support.api import post_files, sha256
from tests.support.images import png


def routes(app: Flask) -> dict[str, set[str]]:
    """The URL rules of each blueprint (the endpoint's prefix)."""
    by_blueprint: dict[str, set[str]] = {}
    for rule in app.url_map.iter_rules():
        by_blueprint.setdefault(rule.endpoint.split(".")[0], set()).add(rule.rule)
    return by_blueprint


def test_each_area_is_a_blueprint(make_app):
    served = routes(make_app())
    assert served["ops"] == {"/", "/healthz", "/readyz", "/info", "/metrics", "/openapi.json"}
    assert served["browser"] == {"/model.onnx", "/web/<path:name>"}
    assert served["predict"] == {"/predict"}
    assert "/v2/models/<name>/infer" in served["v2"] and all(r.startswith("/v2") for r in served["v2"])
    assert set(served) == {"ops", "browser", "predict", "v2"}  # no route outside a blueprint


def test_every_route_reaches_the_one_holder(make_app, model_path):
    app = make_app()
    holder = app.extensions["inference"]
    assert isinstance(holder, ModelHolder)
    with app.test_request_context("/info"):
        assert current_holder() is holder and current_model() is holder.model
    client = app.test_client()
    model_id = sha256(model_path)
    assert client.get("/info").json["model_id"] == model_id
    assert post_files(client, [("a.png", png())]).json["model_id"] == model_id
    assert client.get("/v2/models/classifier").json["versions"] == [model_id]


def test_current_model_is_503_while_none_is_loaded(make_app, tmp_path):
    app = make_app(model_path=tmp_path / "missing.onnx")
    with app.test_request_context("/info"), pytest.raises(ApiError) as e:
        current_model()
    assert e.value.status == 503 and e.value.message.startswith("no model is loaded: ")
