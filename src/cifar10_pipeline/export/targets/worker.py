"""An onnxruntime session serving requests on stdin/stdout, for a target whose onnxruntime lives in another
environment (onnxruntime-openvino replaces onnxruntime, so the OpenVINO provider never runs in the caller's process).

``python -m cifar10_pipeline.export.targets.worker --model FILE --providers P1,P2`` answers a hello (the engine's
name and the session's active providers), then each request until stdin closes. A message is one JSON header line,
then the bytes of the array it describes (``dtype``, ``shape``), if any:

- ``{"op": "infer"}`` + uint8 images [N, H, W, C] -> float32 logits [N, classes];
- ``{"op": "latencies", "runs": R}`` + uint8 images -> float64 seconds [R] of batch-1 calls, timed in here;
- an answer ``{"error": "..."}`` says what went wrong.

``remote.WorkerRunner`` is the other end. numpy, onnxruntime and the contract only.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, BinaryIO

import numpy as np

from cifar10_pipeline.contract import INPUT_NAME, OUTPUT_NAME
from cifar10_pipeline.export.targets.latency import batch1_latencies


def write_message(stream: BinaryIO, header: dict[str, Any], array: np.ndarray | None = None) -> None:
    """``header`` (plus ``dtype`` and ``shape`` of ``array``) as a JSON line, then the array's bytes."""
    if array is not None:
        array = np.ascontiguousarray(array)
        header = {**header, "dtype": array.dtype.name, "shape": list(array.shape)}
    stream.write(json.dumps(header).encode() + b"\n")
    if array is not None:
        stream.write(array.tobytes())
    stream.flush()


def read_message(stream: BinaryIO) -> tuple[dict[str, Any], np.ndarray | None] | None:
    """The next (header, array or None) from ``stream``; None at its end."""
    line = stream.readline()
    if not line:
        return None
    header = json.loads(line)
    if "dtype" not in header:
        return header, None
    dtype, shape = np.dtype(header["dtype"]), tuple(header["shape"])
    size = dtype.itemsize * int(np.prod(shape))
    data = stream.read(size)
    if len(data) != size:
        raise EOFError(f"the stream ended {size - len(data)} bytes into an array of {size}")
    return header, np.frombuffer(data, dtype).reshape(shape)


class SessionRunner:
    """onnxruntime on ``providers`` from a model file (ONNX or ORT format), in this environment."""

    def __init__(self, model: str, providers: list[str]):
        import onnxruntime as ort

        self.session = ort.InferenceSession(model, providers=providers)
        active = self.session.get_providers()
        self.name = f"onnxruntime {ort.__version__} ({', '.join(active)})"
        self.providers = active

    def infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {OUTPUT_NAME: self.session.run([OUTPUT_NAME], feeds)[0]}


def serve(runner: SessionRunner, requests: BinaryIO, answers: BinaryIO) -> None:
    """Answer ``requests`` until they end."""
    write_message(answers, {"name": runner.name, "providers": runner.providers})
    while (message := read_message(requests)) is not None:
        header, images = message
        try:
            if header.get("op") == "infer":
                write_message(answers, {}, runner.infer({INPUT_NAME: images})[OUTPUT_NAME])
            elif header.get("op") == "latencies":
                write_message(answers, {}, batch1_latencies(runner, images, int(header["runs"])))
            else:
                write_message(answers, {"error": f"unknown op {header.get('op')!r}"})
        except Exception as e:  # onnxruntime's own error types: the caller reports them
            write_message(answers, {"error": f"{type(e).__name__}: {e}"})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="model file (.onnx or .ort)")
    parser.add_argument("--providers", required=True, help="onnxruntime execution providers, comma-separated")
    args = parser.parse_args(argv)
    # the answers go to a private copy of stdout; anything a library prints goes to stderr instead
    answers = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    runner = SessionRunner(args.model, [p for p in args.providers.split(",") if p])
    serve(runner, sys.stdin.buffer, answers)
    return 0


if __name__ == "__main__":
    sys.exit(main())
