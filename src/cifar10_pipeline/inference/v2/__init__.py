"""The Open Inference Protocol (KServe v2, Triton's HTTP/REST API) under /v2, beside /predict.

One model, named ``config.model_name`` ("classifier"), whose one version is the served file's id (sha256):
a hot swap is a new version, and a request naming the old one gets 404. Its input is ``image`` UINT8
``[-1, H, W, C]`` (raw pixels, no decoding), its output ``logits`` FP32 ``[-1, num_classes]``.

Extensions: ``binary_tensor_data`` (``Inference-Header-Content-Length``: a JSON header followed by raw
little-endian tensors, ``binary_data_size`` on inputs, ``binary_data`` / ``binary_data_output`` asking for
binary outputs) and ``classification`` (``parameters.classification: k`` on the output: the top k of each
row as BYTES ``"score:index:label"``, the score being the logit, as Triton writes it). Request bodies may be
gzip or deflate (``Content-Encoding``), as tritonclient can send them.

Every refusal is an ApiError, answered ``{"error": "..."}``: 400 for a malformed request, 404 for an unknown
model or version, 413 over the size limits, 415 for an unknown content encoding, 503 while no model is ready.

The same protocol over gRPC (``inference.GRPCInferenceService``, KServe's and Triton's) on GRPC_PORT when it is
set: ``grpc_service``, with the same answers and refusals as gRPC status codes.

Modules: ``service`` (the protocol's answers, whatever the transport), ``routes`` (the blueprint), ``body`` (the
request body: content encoding, the JSON header and the binary part after it), ``request`` (the JSON header as
pydantic models, which validate it against the served model), ``answers`` (the answers as pydantic models; the
OpenAPI document takes the schemas of both), ``codec`` (tensors: pixels from JSON data or binary bytes, logits as
FP32 or classification BYTES), ``grpc_service``, ``grpc_messages`` and ``grpc_predict_v2.textproto`` (gRPC).
"""
