"""The Flask app: ``create_app()`` builds it; ``python -m cifar10_pipeline.inference.server`` serves it."""

from __future__ import annotations

import os
import platform
import sys
import time
from datetime import datetime, timezone
from importlib.metadata import version
from pathlib import Path

import onnxruntime as ort
from flask import Flask, Request, Response, g, jsonify, request
from werkzeug.exceptions import HTTPException

from cifar10_pipeline.contract import is_quantized
from cifar10_pipeline.inference.bodies import read_body
from cifar10_pipeline.inference.config import ServiceConfig
from cifar10_pipeline.inference.errors import ApiError
from cifar10_pipeline.inference.images import decode_image, limit_pixels
from cifar10_pipeline.inference.metrics import Metrics
from cifar10_pipeline.inference.model import LoadedModel, rank
from cifar10_pipeline.inference.openapi import document as openapi_document
from cifar10_pipeline.inference.service import Service
from cifar10_pipeline.inference.v2 import blueprint as v2_blueprint

DEFAULT_TOP_K = 3
# modules that must never be loaded by the service (it runs on onnxruntime alone); /info reports any found
TRAINING_FRAMEWORKS = ("torch", "tensorflow", "keras", "jax")
INDEX_HTML = Path(__file__).with_name("static") / "index.html"


def create_app(config: ServiceConfig | None = None) -> Flask:
    """Build the app around one Service (model, watcher, batcher); ``config`` defaults to the environment."""
    config = config or ServiceConfig.from_env()
    limit_pixels(config.max_pixels)
    metrics = Metrics()
    service = Service(config, metrics)
    index_html = INDEX_HTML.read_bytes()

    app = Flask(__name__, static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = config.max_upload_bytes  # Flask has no upload limit by default
    app.extensions["inference"] = service
    app.register_blueprint(v2_blueprint)  # the Open Inference Protocol (KServe v2 / Triton) under /v2

    @app.before_request
    def start_timer() -> None:
        g.started = time.perf_counter()

    @app.after_request
    def count(response: Response) -> Response:
        endpoint = request.url_rule.rule if request.url_rule else "unmatched"  # bounded label values
        metrics.observe_request(endpoint, response.status_code, time.perf_counter() - g.started)
        return response

    @app.errorhandler(ApiError)
    def api_error(e: ApiError):
        return jsonify(error=e.message), e.status

    @app.errorhandler(HTTPException)
    def http_error(e: HTTPException):
        length = request.content_length  # None for a chunked body
        if e.code == 413 and length is not None and length <= config.max_upload_bytes:
            # not the body's size but the multipart parser's own limits (Flask >= 3.1 sets both)
            return jsonify(
                error=f"the multipart form has more than {app.config['MAX_FORM_PARTS']} parts or a non-file "
                f"field over {app.config['MAX_FORM_MEMORY_SIZE']} bytes; send each image as a file field"
            ), 413
        if e.code == 413:
            size = f"{length} bytes" if length is not None else "larger"
            return jsonify(error=f"request body is {size}, at most {config.max_upload_bytes} bytes accepted"), 413
        response = jsonify(error=f"{e.name}: {e.description}")
        # the exception's own headers, e.g. the Allow list a 405 must carry (RFC 9110)
        response.headers.extend((k, v) for k, v in e.get_headers() if k.lower() != "content-type")
        return response, e.code

    @app.errorhandler(Exception)
    def internal_error(e: Exception):
        app.logger.exception("unhandled error on %s %s", request.method, request.path)
        return jsonify(error=f"internal error: {type(e).__name__}"), 500

    @app.get("/")
    def index():
        return Response(index_html, mimetype="text/html")

    @app.get("/healthz")
    def healthz():
        return jsonify(status="alive")

    @app.get("/readyz")
    def readyz():
        model = service.model
        if model is None:
            return jsonify(ready=False, error=service.load_error), 503
        return jsonify(ready=True, model_id=model.model_id)

    @app.get("/info")
    def info():
        model = _current_model(service)
        return jsonify(
            model_id=model.model_id,
            model_name=config.model_name,  # the name under /v2/models/
            model_path=str(model.path),
            loaded_at=datetime.fromtimestamp(model.loaded_at, timezone.utc).isoformat(),
            labels=list(model.info.labels),
            input={"height": model.info.height, "width": model.info.width, "channels": model.info.channels},
            metadata=model.info.metadata,  # parity report included, and the quantization report of an INT8 file
            quantized=is_quantized(model.info.metadata),
            self_test=model.self_test,
            providers={"active": list(model.providers), "available": ort.get_available_providers()},
            last_refused=service.load_error,
            config={k: str(v) if isinstance(v, Path) else v for k, v in vars(config).items()},
            imported_frameworks=[m for m in TRAINING_FRAMEWORKS if m in sys.modules],
            pid=os.getpid(),  # the worker process: the same pid across requests means no worker died
            versions={
                "python": platform.python_version(),
                **{p: version(p) for p in ("onnxruntime", "numpy", "pillow", "flask")},
            },
        )

    @app.get("/openapi.json")
    def openapi():
        return jsonify(openapi_document(config, service.model))

    @app.get("/metrics")
    def metrics_text():
        body, content_type = metrics.render(request.headers.get("Accept"))
        return Response(body, content_type=content_type)

    @app.post("/predict")
    def predict():
        model = _current_model(service)  # read once: a swap during this request does not affect it
        top_k = _parse_top_k(request.args.get("top_k"), model.info.num_classes)
        uploads = _read_uploads(request, config.max_files, config.max_upload_bytes)
        images = [decode_image(data, name, model.info.input_shape, config.max_pixels) for name, data in uploads]
        ranked = rank(service.infer(model, images), model.info.labels, top_k)
        predictions = [{"file": name, **r, "model_id": model.model_id} for (name, _), r in zip(uploads, ranked)]
        return jsonify(model_id=model.model_id, predictions=predictions)

    return app


def _current_model(service: Service) -> LoadedModel:
    model = service.model
    if model is None:
        raise ApiError(503, f"no model is loaded: {service.load_error}")
    return model


def _parse_top_k(raw: str | None, num_classes: int) -> int:
    if raw is None:
        return min(DEFAULT_TOP_K, num_classes)
    try:
        top_k = int(raw)
    except ValueError:
        top_k = 0
    if not 1 <= top_k <= num_classes:
        raise ApiError(400, f"top_k must be an integer from 1 to {num_classes}, got {raw!r}")
    return top_k


def _read_uploads(req: Request, max_files: int, max_bytes: int) -> list[tuple[str, bytes]]:
    """(file name, bytes) of every uploaded image: multipart files under any field name, or a raw body."""
    if req.mimetype == "multipart/form-data":
        files = [f for key in req.files for f in req.files.getlist(key)]
        if not files:
            raise ApiError(400, "the multipart form holds no file; send each image as a file field")
        if len(files) > max_files:
            raise ApiError(413, f"{len(files)} files in one request, at most {max_files} accepted")
        return [(f.filename or f.name or f"file {i}", f.read()) for i, f in enumerate(files, 1)]
    if req.mimetype.startswith("image/"):
        data = read_body(req, max_bytes)
        if not data:
            raise ApiError(400, f"the request body is empty; send the image's bytes as {req.mimetype}")
        return [("body", data)]
    sent = f"Content-Type {req.content_type!r}" if req.content_type else "no Content-Type"
    raise ApiError(415, f"{sent} is not accepted; send multipart/form-data or an image/* body")
