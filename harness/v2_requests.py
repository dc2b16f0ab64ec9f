"""One Open Inference Protocol inference request for one image, on both of the service's ports, as Triton's clients
send it: HTTP with binary tensor data (a JSON header, then the raw pixels; the logits back in binary) and gRPC's
ModelInfer with ``raw_input_contents``; built once, so that a load generator sends the same bytes every call. Also
the logits of one call on each, to check the served model against onnxruntime before the load."""

from __future__ import annotations

import json

import grpc
import numpy as np

from cifar10_pipeline.contract import INPUT_NAME, OUTPUT_NAME
from cifar10_pipeline.inference.v2.body import HEADER_LENGTH
from cifar10_pipeline.inference.v2.grpc_messages import protos
from harness.grpc_load import CALL_TIMEOUT_S, infer_call
from harness.server import call

INFER_PATH = "/v2/models/classifier/infer"


def http_request(image: np.ndarray) -> tuple[bytes, dict[str, str]]:
    """(body, headers) of a binary-tensor v2 inference request for ``image`` [N, H, W, C], logits back in binary."""
    header = json.dumps({
        "inputs": [{"name": INPUT_NAME, "datatype": "UINT8", "shape": list(image.shape),
                    "parameters": {"binary_data_size": image.size}}],
        "outputs": [{"name": OUTPUT_NAME, "parameters": {"binary_data": True}}],
    }).encode()
    return header + image.tobytes(), {"Content-Type": "application/octet-stream", HEADER_LENGTH: str(len(header))}


def grpc_request(image: np.ndarray) -> bytes:
    """A serialized ModelInferRequest for ``image``, its pixels in raw_input_contents, as tritonclient.grpc sends."""
    tensor = protos.ModelInferRequest.InferInputTensor(name=INPUT_NAME, datatype="UINT8", shape=list(image.shape))
    return protos.ModelInferRequest(model_name="classifier", inputs=[tensor], raw_input_contents=[image.tobytes()],
                                    outputs=[protos.ModelInferRequest.InferRequestedOutputTensor(name=OUTPUT_NAME)]
                                    ).SerializeToString()


def http_logits(port: int, body: bytes, headers: dict[str, str], count: int) -> np.ndarray:
    """The ``count`` logits of one HTTP inference: the binary output, the last bytes of the answer."""
    status, answer = call(port, "POST", INFER_PATH, body, headers)
    if status != 200:
        raise RuntimeError(f"HTTP inference answered {status}: {answer[:300]!r}")
    return np.frombuffer(answer[-4 * count:], "<f4")


async def grpc_logits(port: int, request: bytes) -> np.ndarray:
    """The logits of one gRPC inference: the response's first raw output."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        response = protos.ModelInferResponse.FromString(await infer_call(channel)(request, timeout=CALL_TIMEOUT_S))
    return np.frombuffer(response.raw_output_contents[0], "<f4")
