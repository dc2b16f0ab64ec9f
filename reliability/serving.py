"""What the serving scenarios (fuzz, soak, swaps) share: the model they serve, a server of it, HTTP calls, the checks
that a good request gets the right answer (one call, or every answer of a load), the load's request timeout, and
their goals as figures and as a markdown table."""

from __future__ import annotations

import atexit
import functools
import hashlib
import io
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families

from cifar10_pipeline.inference.config import ServiceConfig
from cifar10_pipeline.inference.images import decode_image
from cifar10_pipeline.inference.postprocess import rank
from harness.models import make_models
from harness.server import Server, call

# an answer under load later than this fails, and a load's stop waits this long for the requests still open: at
# the soak's concurrency (64) on a contended 2-core machine, answers queue for up to about 9 s
REQUEST_TIMEOUT_S = 15.0


@functools.cache
def workdir() -> Path:
    """A temporary folder for this process's models and server logs, removed when it exits."""
    path = Path(tempfile.mkdtemp(prefix="reliability-"))
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


@functools.cache
def cnn_model() -> bytes:
    """The project's CNN with seeded random weights, exported as the export command exports it (the serving
    benchmarks' model, ``harness.models``): the ONNX file's bytes. Made once per process: every scenario serves
    it."""
    return make_models(workdir())[1].read_bytes()


def model_id(data: bytes) -> str:
    """The id the service gives a model file: the sha256 of its bytes."""
    return hashlib.sha256(data).hexdigest()


def start_server(name: str, model_path: Path, **env: str) -> Server:
    """The service (``cifar10-serve``) on 127.0.0.1 serving ``model_path`` with its default settings, and the
    ``INFERENCE_*`` variables in ``env`` (hot swapping off unless ``env`` sets the poll)."""
    settings = {"INFERENCE_MODEL_PATH": str(model_path), "INFERENCE_RELOAD_POLL_S": "0", **env}
    return Server(settings, workdir() / f"{name}-server.log")


def info(port: int) -> dict[str, Any]:
    status, body = call(port, "GET", "/info")
    if status != 200:
        raise RuntimeError(f"/info answered {status}: {body[:200]!r}")
    return json.loads(body)


def refused_loads(port: int) -> float:
    """How many model files the service has refused so far (its /metrics counter)."""
    status, body = call(port, "GET", "/metrics")
    if status != 200:
        raise RuntimeError(f"/metrics answered {status}")
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            if sample.name == "inference_model_loads_total" and sample.labels.get("result") == "refused":
                return sample.value
    return 0.0


def resident_bytes(pids: list[int]) -> int:
    """Resident memory (VmRSS) of the processes ``pids`` together, from /proc; ended ones count 0."""
    total = 0
    for pid in pids:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        total += next((int(line.split()[1]) * 1024 for line in status.splitlines() if line.startswith("VmRSS:")), 0)
    return total


def good_png(seed: int = 0, size: int = 32) -> bytes:
    """A PNG of seeded random pixels: the good upload."""
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "PNG")
    return out.getvalue()


def expected_prediction(model: bytes, png: bytes) -> dict[str, Any]:
    """What /predict must answer for the upload ``png`` under the model file ``model``, as onnxruntime here
    computes it: the top label and its probability, and the model id."""
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    labels = tuple(json.loads(session.get_modelmeta().custom_metadata_map["labels"]))
    shape = tuple(session.get_inputs()[0].shape[1:])
    pixels = decode_image(png, "good.png", shape, ServiceConfig().max_pixels)[None]
    top = rank(session.run(["logits"], {"image": pixels})[0], labels, 1)[0]
    return {"model_id": model_id(model), "label": top["label"], "probability": top["probability"]}


def prediction_problem(body: bytes | str, expected: dict[str, Any]) -> str | None:
    """Why the /predict answer ``body`` is not ``expected`` (``expected_prediction``), or None when it is: the
    same model id (on the answer and its prediction), top label and probability (within 1e-4)."""
    try:
        answer = json.loads(body)
        top = answer["predictions"][0]
        if answer["model_id"] != expected["model_id"] or top["model_id"] != expected["model_id"]:
            return f"model {answer['model_id'][:12]}, expected {expected['model_id'][:12]}"
        if top["label"] != expected["label"] or abs(top["probability"] - expected["probability"]) > 1e-4:
            return (f"{top['label']} p={top['probability']:.4f}, expected {expected['label']} "
                    f"p={expected['probability']:.4f}")
    except (ValueError, KeyError, IndexError, TypeError) as e:
        return f"not /predict's answer ({type(e).__name__}: {e}): {str(body)[:200]!r}"
    return None


def wrong_answers(bodies: list[dict[str, Any]],
                  expected: dict[str, dict[str, Any]]) -> tuple[int, list[str], dict[str, int]]:
    """Of a counted load's 200 answers (``harness.load``'s tallied bodies), how many are not the prediction of a
    model in ``expected`` (model id -> ``expected_prediction``) for that model, why (one line per distinct wrong
    answer), and how many answers each model in ``expected`` gave right."""
    wrong, why, right = 0, [], dict.fromkeys(expected, 0)
    for tally in bodies:
        if tally["status"] != 200:
            continue  # counted as failed by the load
        try:
            named = json.loads(tally["body"]).get("model_id")
        except (ValueError, AttributeError):
            named = None
        problem = (prediction_problem(tally["body"], expected[named]) if named in expected
                   else f"model {str(named)[:12]} is none of the good files: {tally['body'][:200]!r}")
        if problem:
            wrong += tally["count"]
            why.append(f"{tally['count']} x {problem}")
        else:
            right[named] += tally["count"]
    return wrong, why, right


def answers_correctly(port: int, model: bytes, seed: int = 0) -> tuple[bool, str]:
    """Does the server answer a good /predict upload and a good /v2 infer request as onnxruntime here answers
    them with the file ``model``? (ok, what was compared or what differed)."""
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    shape = tuple(session.get_inputs()[0].shape[1:])
    png = good_png(seed)
    problems = []

    status, body = call(port, "POST", "/predict", png, {"Content-Type": "image/png"})
    problem = prediction_problem(body, expected_prediction(model, png)) if status == 200 else f"status {status}"
    if problem:
        problems.append(f"/predict answered {status} {body[:200]!r}: {problem}")

    raw = np.random.default_rng(seed).integers(0, 256, (2, *shape), dtype=np.uint8)
    request = {"inputs": [{"name": "image", "datatype": "UINT8", "shape": list(raw.shape),
                           "data": raw.ravel().tolist()}]}
    status, body = call(port, "POST", f"/v2/models/{ServiceConfig().model_name}/infer", json.dumps(request).encode(),
                        {"Content-Type": "application/json"})
    logits = session.run(["logits"], {"image": raw})[0]
    answer = json.loads(body)["outputs"][0]["data"] if status == 200 else None
    if answer is None or not np.allclose(np.reshape(answer, logits.shape), logits, atol=1e-4):
        problems.append(f"/v2 infer answered {status} {body[:200]!r}, not onnxruntime's logits")
    elif json.loads(body).get("model_version") != model_id(model):
        problems.append("/v2 infer named another model version")
    return not problems, "; ".join(problems) or "/predict label and probability, /v2 logits match onnxruntime"


def goal(text: str, met: bool, figure: str) -> dict[str, Any]:
    return {"goal": text, "met": bool(met), "figure": figure}


def goals_markdown(goals: list[dict[str, Any]]) -> list[str]:
    """The goals as a markdown table's lines."""
    lines = ["| goal | figure | met |", "| --- | --- | --- |"]
    lines += [f"| {g['goal']} | {g['figure']} | **{'yes' if g['met'] else 'no'}** |" for g in goals]
    return lines
