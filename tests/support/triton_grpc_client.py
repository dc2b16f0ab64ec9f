"""Talks to the service's gRPC port with NVIDIA's own client, ``tritonclient.grpc`` (and its asyncio API), unmodified,
and prints what it saw as one JSON object, with tritonclient's own descriptor of the protocol's messages to compare
the service's schema with. Run by tests/inference/v2/test_grpc_tritonclient.py with the interpreter of a venv holding
``tritonclient[grpc]`` (whose pins clash with the project's): numpy and tritonclient only, nothing of the repo.

    python -I triton_grpc_client.py --url 127.0.0.1:8001 --model classifier --images images.npy --max-files 4
        [--old-version ID]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json

import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.grpc.aio as aioclient
from tritonclient.grpc import service_pb2
from tritonclient.utils import InferenceServerException


def tensors(metadata) -> list[dict]:
    return [{"name": t.name, "datatype": t.datatype, "shape": list(t.shape)} for t in metadata]


async def infer_aio(url: str, model: str, images: np.ndarray) -> list:
    """One inference through the asyncio API (the benchmark's client)."""
    async with aioclient.InferenceServerClient(url) as client:
        tensor = aioclient.InferInput("image", list(images.shape), "UINT8")
        tensor.set_data_from_numpy(images)
        return (await client.infer(model, [tensor])).as_numpy("logits").tolist()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True, help="host:port of the gRPC port")
    parser.add_argument("--model", required=True)
    parser.add_argument("--images", required=True, help=".npy file of uint8 [N, H, W, C]")
    parser.add_argument("--max-files", type=int, required=True, help="the server's INFERENCE_MAX_FILES")
    parser.add_argument("--old-version", help="a version the server no longer serves")
    args = parser.parse_args()
    images = np.load(args.images)
    name = args.model
    client = grpcclient.InferenceServerClient(url=args.url)

    metadata = client.get_model_metadata(name)
    version = metadata.versions[0]
    num_classes = metadata.outputs[0].shape[1]
    server = client.get_server_metadata()
    seen = {
        "live": client.is_server_live(),
        "ready": client.is_server_ready(),
        "model_ready": client.is_model_ready(name),
        "version_ready": client.is_model_ready(name, version),
        "unknown_model_ready": client.is_model_ready("no-such-model"),
        "server_metadata": {"name": server.name, "version": server.version, "extensions": list(server.extensions)},
        "model_metadata": {"name": metadata.name, "versions": list(metadata.versions), "platform": metadata.platform,
                           "inputs": tensors(metadata.inputs), "outputs": tensors(metadata.outputs)},
        # tritonclient's own descriptor of Triton's grpc_service.proto, serialized: the test compares the service's
        # schema with it, message by message
        "file_descriptor": base64.b64encode(service_pb2.DESCRIPTOR.serialized_pb).decode(),
    }

    def infer(data=images, input_name="image", datatype="UINT8", class_count=0, output_name="logits", outputs=True,
              model=name, model_version="", **kwargs):
        tensor = grpcclient.InferInput(input_name, list(data.shape), datatype)
        tensor.set_data_from_numpy(data)  # sent as raw_input_contents, as tritonclient.grpc always does
        requested = [grpcclient.InferRequestedOutput(output_name, class_count=class_count)]
        result = client.infer(model, [tensor], model_version=model_version, outputs=requested if outputs else None,
                              **kwargs)
        response = result.get_response()
        values = result.as_numpy("logits")
        if values.dtype == object:  # classification: BYTES
            values = np.vectorize(lambda s: s.decode(), otypes=[object])(values)
        return {"model_name": response.model_name, "model_version": response.model_version, "id": response.id,
                "outputs": [{"name": o.name, "datatype": o.datatype, "shape": list(o.shape)} for o in response.outputs],
                "values": values.tolist()}

    seen["infer"] = {
        "raw": infer(request_id="raw-1"),
        "default_outputs": infer(outputs=False),
        "gzip": infer(compression_algorithm="gzip"),
        "versioned": infer(model_version=version),
        "classification": infer(class_count=3),
        "aio": {"values": asyncio.run(infer_aio(args.url, name, images))},
    }

    def error(call, **kwargs):
        try:
            call(**kwargs)
        except InferenceServerException as e:
            return {"status": e.status(), "message": e.message()}
        return None

    too_many = np.zeros((args.max_files + 1, *images.shape[1:]), np.uint8)
    seen["errors"] = {
        "unknown_model": error(infer, model="no-such-model"),
        "unknown_version": error(infer, model_version="1"),
        "unknown_model_metadata": error(client.get_model_metadata, model_name="no-such-model"),
        "wrong_input_name": error(infer, input_name="pixels"),
        "wrong_datatype": error(infer, data=images.astype(np.float32), datatype="FP32"),
        "wrong_shape": error(infer, data=np.ascontiguousarray(images[:, 1:])),
        "too_many_images": error(infer, data=too_many),
        "unknown_output": error(infer, output_name="probabilities"),
        "classification_too_large": error(infer, class_count=num_classes + 1),
        "not_implemented": error(client.get_model_config, model_name=name),  # Triton's, not the v2 protocol's
    }
    if args.old_version:
        seen["errors"]["old_version"] = error(infer, model_version=args.old_version)
        seen["old_version_ready"] = client.is_model_ready(name, args.old_version)
    client.close()
    print(json.dumps(seen))


if __name__ == "__main__":
    main()
