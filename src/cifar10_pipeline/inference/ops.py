"""The operations routes: the upload page, liveness, readiness, the model's description, metrics and the OpenAPI
document."""

from __future__ import annotations

import os
import platform
import sys
from datetime import datetime, timezone
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import PIL
from flask import Blueprint, Response, jsonify, request

from cifar10_pipeline.contract import is_quantized
from cifar10_pipeline.inference.holder import current_holder, current_model
from cifar10_pipeline.inference.openapi import document as openapi_document

# modules that must never be loaded by the service (it runs on onnxruntime alone); /info reports any found
TRAINING_FRAMEWORKS = ("torch", "tensorflow", "keras", "jax")
# the upload page, one self-contained file: read once
INDEX_PAGE = (Path(__file__).with_name("static") / "index.html").read_bytes()

blueprint = Blueprint("ops", __name__)


@blueprint.get("/")
def index():
    return Response(INDEX_PAGE, mimetype="text/html")


@blueprint.get("/healthz")
def healthz():
    return jsonify(status="alive")


@blueprint.get("/readyz")
def readyz():
    holder = current_holder()
    model = holder.model
    if model is None:
        return jsonify(ready=False, error=holder.load_error), 503
    return jsonify(ready=True, model_id=model.model_id)


@blueprint.get("/info")
def info():
    holder, model = current_holder(), current_model()
    config = holder.config
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
        providers={"requested": list(model.requested_providers), "active": list(model.providers),
                   "not_started": model.providers_not_started, "available": ort.get_available_providers()},
        last_refused=holder.load_error,
        config={k: str(v) if isinstance(v, Path) else v for k, v in vars(config).items()},
        imported_frameworks=[m for m in TRAINING_FRAMEWORKS if m in sys.modules],
        pid=os.getpid(),  # the worker process: the same pid across requests means no worker died
        versions=versions(),
    )


def versions() -> dict[str, Any]:
    """The versions of Python and of the libraries that answer requests, as imported: a module's own
    ``__version__``, whichever distribution installed it (onnxruntime comes as ``onnxruntime-gpu`` in the GPU
    image); Flask, which deprecated its ``__version__``, by its one distribution name."""
    return {"python": platform.python_version(), "onnxruntime": ort.__version__, "numpy": np.__version__,
            "pillow": PIL.__version__, "flask": version("flask")}


@blueprint.get("/openapi.json")
def openapi():
    holder = current_holder()
    return jsonify(openapi_document(holder.config, holder.model))


@blueprint.get("/metrics")
def metrics():
    body, content_type = current_holder().metrics.render(request.headers.get("Accept"))
    return Response(body, content_type=content_type)
