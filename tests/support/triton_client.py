"""Talks to the service's /v2 API with NVIDIA's own client, ``tritonclient.http``, unmodified, and prints what it
saw as one JSON object. Run by tests/inference/test_v2_tritonclient.py with the interpreter of a venv holding
``tritonclient[http]`` (whose pins clash with the project's): numpy and tritonclient only, nothing of the repo.

    python -I triton_client.py --url 127.0.0.1:8000 --model classifier --images images.npy [--old-version ID]
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True, help="host:port")
    parser.add_argument("--model", required=True)
    parser.add_argument("--images", required=True, help=".npy file of uint8 [N, H, W, C]")
    parser.add_argument("--max-files", type=int, required=True, help="the server's INFERENCE_MAX_FILES")
    parser.add_argument("--old-version", help="a version the server no longer serves")
    args = parser.parse_args()
    images = np.load(args.images)
    name = args.model
    client = httpclient.InferenceServerClient(url=args.url, connection_timeout=30.0, network_timeout=60.0)

    metadata = client.get_model_metadata(name)
    version = metadata["versions"][0]
    num_classes = metadata["outputs"][0]["shape"][1]
    seen = {
        "live": client.is_server_live(),
        "ready": client.is_server_ready(),
        "model_ready": client.is_model_ready(name),
        "version_ready": client.is_model_ready(name, version),
        "unknown_model_ready": client.is_model_ready("no-such-model"),
        "server_metadata": client.get_server_metadata(),
        "model_metadata": metadata,
    }

    def infer(data=images, input_name="image", datatype="UINT8", binary_in=True, binary_out=True, class_count=0,
              output_name="logits", outputs=True, model=name, model_version="", **kwargs):
        tensor = httpclient.InferInput(input_name, list(data.shape), datatype)
        tensor.set_data_from_numpy(data, binary_data=binary_in)
        requested = [httpclient.InferRequestedOutput(output_name, binary_data=binary_out, class_count=class_count)]
        result = client.infer(model, [tensor], model_version=model_version, outputs=requested if outputs else None,
                              **kwargs)
        values = result.as_numpy("logits")
        response = result.get_response()
        for output in response["outputs"]:
            output.pop("data", None)  # the values are reported once, below
        if values.dtype == object:  # classification: BYTES, bytes when binary, str when JSON
            values = np.vectorize(lambda s: s.decode() if isinstance(s, bytes) else s, otypes=[object])(values)
        return {"response": response, "values": values.tolist()}

    seen["infer"] = {
        "json": infer(binary_in=False, binary_out=False, request_id="json-1"),
        "binary": infer(request_id="binary-1"),
        "default_outputs": infer(outputs=False),  # the client then asks for binary_data_output
        "gzip": infer(request_compression_algorithm="gzip"),
        "deflate": infer(request_compression_algorithm="deflate"),
        "versioned": infer(model_version=version),
        "classification_binary": infer(class_count=3),
        "classification_json": infer(class_count=3, binary_in=False, binary_out=False),
    }

    def error(call, **kwargs):
        try:
            call(**kwargs)
        except InferenceServerException as e:
            return {"status": int(e.status()), "message": e.message()}
        return None

    too_many = np.zeros((args.max_files + 1, *images.shape[1:]), np.uint8)
    seen["errors"] = {
        "unknown_model": error(infer, model="no-such-model"),
        "unknown_version": error(infer, model_version="1"),
        "unknown_model_metadata": error(client.get_model_metadata, model_name="no-such-model"),
        "wrong_input_name": error(infer, input_name="pixels"),
        "wrong_datatype": error(infer, data=images.astype(np.float32), datatype="FP32"),
        "wrong_shape": error(infer, data=np.ascontiguousarray(images[:, 1:])),
        "wrong_shape_json": error(infer, data=np.ascontiguousarray(images[:, 1:]), binary_in=False),
        "too_many_images": error(infer, data=too_many),
        "unknown_output": error(infer, output_name="probabilities"),
        "classification_too_large": error(infer, class_count=num_classes + 1),
    }
    if args.old_version:
        seen["errors"]["old_version"] = error(infer, model_version=args.old_version)
        seen["old_version_ready"] = client.is_model_ready(name, args.old_version)
    client.close()
    print(json.dumps(seen))


if __name__ == "__main__":
    main()
