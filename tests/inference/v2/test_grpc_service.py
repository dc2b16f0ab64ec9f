"""The Open Inference Protocol over gRPC, in process through grpcio's own channel: health, metadata, inference (raw
and typed contents) equal to a direct onnxruntime call, classification, each refusal with its gRPC status code, a
swap seen as a new version, the metrics each call adds, and GRPC_PORT turning it on."""

from __future__ import annotations

import struct

import grpc
import numpy as np
import pytest

from cifar10_pipeline.contract import project_version
from cifar10_pipeline.inference.app import create_app
from cifar10_pipeline.inference.config import ServiceConfig
from cifar10_pipeline.inference.holder import ModelHolder
from cifar10_pipeline.inference.metrics import Metrics
from cifar10_pipeline.inference.v2 import grpc_service
from cifar10_pipeline.inference.v2.grpc_messages import protos, stub
from harness.server import free_port
from tests.support.api import parse_metrics, sha256
from tests.support.onnx_models import CIFAR10_LABELS, write_model
from tests.support.v2 import onnxruntime_logits, pixels

MAX_FILES = 4


@pytest.fixture
def holder(model_path):
    holder = ModelHolder(ServiceConfig(model_path=model_path, reload_poll_s=0, max_files=MAX_FILES), Metrics())
    yield holder
    holder.close()


@pytest.fixture
def client(holder):
    server, port = grpc_service.serve(holder, 0, host="127.0.0.1", threads=2)
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield stub(channel)
    server.stop(None)


def raw_request(images: np.ndarray, **fields) -> protos.ModelInferRequest:
    tensor = protos.ModelInferRequest.InferInputTensor(name="image", datatype="UINT8", shape=list(images.shape))
    return protos.ModelInferRequest(**{"model_name": "classifier", "inputs": [tensor],
                                       "raw_input_contents": [images.tobytes()], **fields})


def logits_of(response) -> np.ndarray:
    (output,) = response.outputs
    assert (output.name, output.datatype) == ("logits", "FP32")
    return np.frombuffer(response.raw_output_contents[0], "<f4").reshape(output.shape)


def refused(call, request) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as caught:
        call(request)
    return caught.value.code(), caught.value.details()


def test_health_and_metadata(client, model_path):
    assert client.ServerLive(protos.ServerLiveRequest()).live
    assert client.ServerReady(protos.ServerReadyRequest()).ready
    server = client.ServerMetadata(protos.ServerMetadataRequest())
    assert (server.name, server.version, list(server.extensions)) == (
        "cifar10-pipeline", project_version(), ["binary_tensor_data", "classification"])
    version = sha256(model_path)
    for asked in ("", version):
        metadata = client.ModelMetadata(protos.ModelMetadataRequest(name="classifier", version=asked))
        assert (metadata.name, list(metadata.versions), metadata.platform) == ("classifier", [version], "onnx_onnxv1")
        assert [(t.name, t.datatype, list(t.shape)) for t in metadata.inputs] == [("image", "UINT8", [-1, 32, 32, 3])]
        assert [(t.name, t.datatype, list(t.shape)) for t in metadata.outputs] == [("logits", "FP32", [-1, 10])]
        assert client.ModelReady(protos.ModelReadyRequest(name="classifier", version=asked)).ready
    # as Triton answers: not ready, rather than an error
    assert not client.ModelReady(protos.ModelReadyRequest(name="resnet")).ready
    assert not client.ModelReady(protos.ModelReadyRequest(name="classifier", version="1")).ready


def test_infer_raw_and_typed_contents_equal_onnxruntime(client, model_path):
    images = pixels(3)
    expected = onnxruntime_logits(model_path, images)
    response = client.ModelInfer(raw_request(images, id="req-1"))
    assert (response.model_name, response.model_version, response.id) == ("classifier", sha256(model_path), "req-1")
    np.testing.assert_allclose(logits_of(response), expected, rtol=1e-6, atol=1e-6)

    contents = protos.InferTensorContents(uint_contents=images.ravel().tolist())
    tensor = protos.ModelInferRequest.InferInputTensor(name="image", datatype="UINT8", shape=[3, 32, 32, 3],
                                                       contents=contents)
    typed = client.ModelInfer(protos.ModelInferRequest(model_name="classifier", model_version=sha256(model_path),
                                                     inputs=[tensor]))
    np.testing.assert_allclose(logits_of(typed), expected, rtol=1e-6, atol=1e-6)
    assert typed.id == ""


def test_classification_is_triton_bytes(client, model_path):
    images = pixels(2)
    expected = onnxruntime_logits(model_path, images)
    parameters = {"classification": protos.InferParameter(int64_param=3)}
    output = protos.ModelInferRequest.InferRequestedOutputTensor(name="logits", parameters=parameters)
    response = client.ModelInfer(raw_request(images, outputs=[output]))
    (tensor,) = response.outputs
    assert (tensor.datatype, list(tensor.shape)) == ("BYTES", [2, 3])
    raw, strings = response.raw_output_contents[0], []
    while raw:  # Triton's serialized BYTES: a little-endian uint32 length, then the bytes
        (length,) = struct.unpack_from("<I", raw)
        strings.append(raw[4:4 + length].decode())
        raw = raw[4 + length:]
    top3 = np.argsort(-expected, axis=1, kind="stable")[:, :3]
    assert strings == [f"{expected[r, i]}:{i}:{CIFAR10_LABELS[i]}" for r in range(2) for i in top3[r]]


def _typed(values: dict, datatype: str = "UINT8") -> protos.ModelInferRequest:
    tensor = protos.ModelInferRequest.InferInputTensor(name="image", datatype=datatype, shape=[1, 32, 32, 3],
                                                       contents=protos.InferTensorContents(**values))
    return protos.ModelInferRequest(model_name="classifier", inputs=[tensor])


def _output(name: str = "logits", top_k: int | None = None):
    parameters = {} if top_k is None else {"classification": protos.InferParameter(int64_param=top_k)}
    return protos.ModelInferRequest.InferRequestedOutputTensor(name=name, parameters=parameters)


INVALID, NOT_FOUND = grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND
REFUSALS = {
    "unknown-model": (raw_request(pixels(1), model_name="resnet"), NOT_FOUND, "unknown model 'resnet'"),
    "unknown-version": (raw_request(pixels(1), model_version="1"), NOT_FOUND, "has no version '1'"),
    "wrong-name": (raw_request(pixels(1), inputs=[protos.ModelInferRequest.InferInputTensor(
        name="pixels", datatype="UINT8", shape=[1, 32, 32, 3])]), INVALID, "unknown input 'pixels'"),
    "wrong-datatype": (raw_request(pixels(1), inputs=[protos.ModelInferRequest.InferInputTensor(
        name="image", datatype="FP32", shape=[1, 32, 32, 3])]), INVALID, "must be UINT8, got datatype 'FP32'"),
    "wrong-shape": (raw_request(pixels(1, shape=(28, 28, 3))), INVALID, "must have shape [N, 32, 32, 3]"),
    "too-many-images": (raw_request(pixels(MAX_FILES + 1)), INVALID, f"at most {MAX_FILES} accepted"),
    "raw-too-short": (raw_request(pixels(1), raw_input_contents=[b"\0" * 3000]), INVALID,
                      "binary_data_size 3000, but UINT8 [1, 32, 32, 3] is 3072 bytes"),
    "raw-per-input": (raw_request(pixels(1), raw_input_contents=[b"", b""]), INVALID,
                      "raw_input_contents holds 2 tensors for 1 inputs"),
    "raw-and-contents": (raw_request(pixels(1), inputs=[protos.ModelInferRequest.InferInputTensor(
        name="image", datatype="UINT8", shape=[1, 32, 32, 3], contents=protos.InferTensorContents(
            uint_contents=[0] * 3072))]), INVALID, "both contents and raw_input_contents"),
    "no-values": (_typed({}), INVALID, "has no values"),
    "uint8-in-int-contents": (_typed({"int_contents": [0] * 3072}), INVALID,
                              "its values go in contents.uint_contents, got contents.int_contents"),
    "typed-out-of-range": (_typed({"uint_contents": [256] * 3072}), INVALID, "integers from 0 to 255"),
    "typed-too-few": (_typed({"uint_contents": [0] * 10}), INVALID, "must be a list of 3072 values"),
    "unknown-output": (raw_request(pixels(1), outputs=[_output("probabilities")]), INVALID,
                       "unknown output 'probabilities'"),
    "classification-too-large": (raw_request(pixels(1), outputs=[_output(top_k=11)]), INVALID,
                                 "must be an integer from 1 to 10, got 11"),
}


@pytest.mark.parametrize("case", REFUSALS)
def test_refusals_carry_the_protocols_status_codes(client, case):
    request, code, message = REFUSALS[case]
    got_code, details = refused(client.ModelInfer, request)
    assert got_code == code and message in details, (got_code, details)


def test_unknown_model_metadata_is_not_found(client):
    code, details = refused(client.ModelMetadata, protos.ModelMetadataRequest(name="resnet"))
    assert code == NOT_FOUND and "unknown model 'resnet'" in details


def test_without_a_model_the_server_is_unavailable(tmp_path):
    holder = ModelHolder(ServiceConfig(model_path=tmp_path / "missing.onnx", reload_poll_s=0), Metrics())
    server, port = grpc_service.serve(holder, 0, host="127.0.0.1", threads=1)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            calls = stub(channel)
            assert calls.ServerLive(protos.ServerLiveRequest()).live
            assert not calls.ServerReady(protos.ServerReadyRequest()).ready
            assert not calls.ModelReady(protos.ModelReadyRequest(name="classifier")).ready
            code, details = refused(calls.ModelInfer, raw_request(pixels(1)))
            assert code == grpc.StatusCode.UNAVAILABLE and "model 'classifier' is not ready" in details
            code, _ = refused(calls.ModelMetadata, protos.ModelMetadataRequest(name="classifier"))
            assert code == grpc.StatusCode.UNAVAILABLE
    finally:
        server.stop(None)
        holder.close()


def test_a_swap_is_a_new_version(client, holder, model_path, tmp_path):
    images = pixels(2)
    old = sha256(model_path)
    write_model(tmp_path / "new.onnx", seed=3).replace(model_path)
    assert holder.reload()
    new = sha256(model_path)
    response = client.ModelInfer(raw_request(images))
    assert response.model_version == new != old
    np.testing.assert_allclose(logits_of(response), onnxruntime_logits(model_path, images), rtol=1e-6, atol=1e-6)
    code, details = refused(client.ModelInfer, raw_request(images, model_version=old))
    assert code == NOT_FOUND and f"has no version '{old}'" in details
    assert not client.ModelReady(protos.ModelReadyRequest(name="classifier", version=old)).ready


def test_calls_are_counted_by_method_and_status_code(client, holder):
    client.ModelInfer(raw_request(pixels(2)))
    refused(client.ModelInfer, raw_request(pixels(1), model_name="resnet"))
    client.ServerLive(protos.ServerLiveRequest())
    metrics = parse_metrics(holder.metrics.render(None)[0].decode())
    infer = 'endpoint="/inference.GRPCInferenceService/ModelInfer"'
    assert metrics[f'inference_requests_total{{{infer},status="OK"}}'] == 1
    assert metrics[f'inference_requests_total{{{infer},status="NOT_FOUND"}}'] == 1
    assert metrics[f'inference_request_duration_seconds_count{{{infer},status="OK"}}'] == 1
    assert metrics['inference_requests_total{endpoint="/inference.GRPCInferenceService/ServerLive",status="OK"}'] == 1
    assert metrics["inference_batch_size_sum"] == 2  # through the holder's batcher


def test_grpc_port_starts_it_beside_http(model_path):
    config = ServiceConfig.from_env({"INFERENCE_MODEL_PATH": str(model_path), "INFERENCE_RELOAD_POLL_S": "0",
                                     "GRPC_PORT": str(free_port())})
    app = create_app(config)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{config.grpc_port}") as channel:
            calls = stub(channel)
            assert calls.ModelInfer(raw_request(pixels(1))).model_version == sha256(model_path)
        # one holder for both protocols: the gRPC call shows in the app's /metrics
        assert "/inference.GRPCInferenceService/ModelInfer" in app.test_client().get("/metrics").get_data(as_text=True)
    finally:
        app.extensions[grpc_service.EXTENSION].stop(None)
        app.extensions["inference"].close()
    assert ServiceConfig.from_env({}).grpc_port == 0  # off unless set
