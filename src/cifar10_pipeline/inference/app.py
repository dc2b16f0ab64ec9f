"""The Flask app: ``create_app()`` builds it; ``cifar10-serve`` (``inference.server``) serves it."""

from __future__ import annotations

import time

from flask import Flask, Response, g, request

from cifar10_pipeline.inference import browser, ops, predict
from cifar10_pipeline.inference.config import ServiceConfig
from cifar10_pipeline.inference.errors import register_error_handlers
from cifar10_pipeline.inference.holder import ModelHolder, current_holder, init_app
from cifar10_pipeline.inference.images import limit_pixels
from cifar10_pipeline.inference.metrics import Metrics
from cifar10_pipeline.inference.v2.routes import blueprint as v2_blueprint


def create_app(config: ServiceConfig | None = None) -> Flask:
    """Build the app around one ModelHolder (model, watcher, batcher); ``config`` defaults to the environment.

    Routes by area: ``ops`` (the page, health, /info, /metrics, /openapi.json), ``browser`` (what the page's browser
    mode loads: /model.onnx, /web/...), ``predict`` (/predict) and ``v2`` (the Open Inference Protocol); each reaches
    the holder through ``holder.current_holder()``. With ``config.grpc_port`` set, the same protocol over gRPC
    starts on that port around the same holder (``v2.grpc_service``; its server in ``app.extensions``).
    """
    config = config or ServiceConfig.from_env()
    limit_pixels(config.max_pixels)
    app = Flask(__name__, static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = config.max_upload_bytes  # Flask has no upload limit by default
    holder = ModelHolder(config, Metrics())
    init_app(app, holder)
    if config.grpc_port:
        from cifar10_pipeline.inference.v2 import grpc_service  # grpcio and the messages: only when asked

        app.extensions[grpc_service.EXTENSION] = grpc_service.serve(holder, config.grpc_port)[0]
    for blueprint in (ops.blueprint, browser.blueprint, predict.blueprint, v2_blueprint):
        app.register_blueprint(blueprint)
    register_error_handlers(app)
    app.before_request(_start_timer)
    app.after_request(_count)
    app.after_request(_whole_body)
    return app


def _start_timer() -> None:
    g.started = time.perf_counter()


def _count(response: Response) -> Response:
    endpoint = request.url_rule.rule if request.url_rule else "unmatched"  # bounded label values
    current_holder().metrics.observe_request(endpoint, response.status_code, time.perf_counter() - g.started)
    return response


def _whole_body(response: Response) -> Response:
    """A body already in memory goes to the HTTP server as one list of bytes, which granian writes with the
    response's head in one piece; any other iterable it writes head first, then the body. A replica killed between
    those two writes leaves HAProxy a response whose head it has already forwarded, so it cannot send the request
    to another replica: the client gets half an answer. (send_file's files still stream.)"""
    if response.is_sequence:
        response.set_data(response.get_data())  # one bytes item, whatever the view put in the list
        response.direct_passthrough = True  # werkzeug then hands the list over as it is
    return response
