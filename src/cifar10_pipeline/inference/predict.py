"""The ``/predict`` route: uploaded images (multipart files or one raw image body) -> their ranked labels."""

from __future__ import annotations

from flask import Blueprint, Request, jsonify, request

from cifar10_pipeline.inference.bodies import read_body
from cifar10_pipeline.inference.errors import ApiError
from cifar10_pipeline.inference.holder import current_holder, current_model
from cifar10_pipeline.inference.images import decode_image
from cifar10_pipeline.inference.postprocess import rank

DEFAULT_TOP_K = 3

blueprint = Blueprint("predict", __name__)


@blueprint.post("/predict")
def predict():
    holder, model = current_holder(), current_model()  # the model read once: a swap does not affect this request
    config = holder.config
    top_k = _parse_top_k(request.args.get("top_k"), model.info.num_classes)
    uploads = _read_uploads(request, config.max_files, config.max_upload_bytes)
    images = [decode_image(data, name, model.info.input_shape, config.max_pixels) for name, data in uploads]
    ranked = rank(holder.infer(model, images), model.info.labels, top_k)
    predictions = [{"file": name, **r, "model_id": model.model_id} for (name, _), r in zip(uploads, ranked)]
    return jsonify(model_id=model.model_id, predictions=predictions)


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
