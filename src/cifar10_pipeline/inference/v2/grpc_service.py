"""The Open Inference Protocol over gRPC (``inference.GRPCInferenceService``, as KServe and Triton serve it) on its own
port (``GRPC_PORT``), in the process of the HTTP service and around its ModelHolder: the same model, batcher, hot
swap and metrics, and the same answers (``service``), so an HTTP and a gRPC client are told the same things.

The messages and calls are ``grpc_messages``'s (read from ``grpc_predict_v2.textproto``).

A request becomes the HTTP API's JSON header (``request_header``): ``raw_input_contents`` become its binary part,
``contents.uint_contents`` its ``data``, an output's ``classification`` parameter its parameter; the v2 models and
codec then validate and decode it exactly as for HTTP. Every output goes back as ``raw_output_contents`` (as Triton
answers), FP32 logits or classification BYTES. A refusal's HTTP status becomes the protocol's gRPC status code
(``STATUS_CODES``): INVALID_ARGUMENT for a bad request, NOT_FOUND for an unknown model or version, UNAVAILABLE while
no model is ready or inference timed out. ModelReady answers ``ready: false`` for an unknown model or version, as
Triton does, rather than an error. Metrics: each call is counted as a request whose endpoint is the gRPC method's
path (``/inference.GRPCInferenceService/ModelInfer``) and whose status is the gRPC status code's name (``OK``,
``INVALID_ARGUMENT``...).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc

from cifar10_pipeline.inference.config import default_threads
from cifar10_pipeline.inference.errors import ApiError
from cifar10_pipeline.inference.holder import ModelHolder
from cifar10_pipeline.inference.v2 import service
from cifar10_pipeline.inference.v2.grpc_messages import SERVICE_NAME, handler, protos
from cifar10_pipeline.inference.v2.request import INPUT_DATATYPE

log = logging.getLogger(__name__)

EXTENSION = "inference-grpc"  # the running grpc.Server's key in app.extensions
STATUS_CODES = {400: grpc.StatusCode.INVALID_ARGUMENT, 404: grpc.StatusCode.NOT_FOUND,
                413: grpc.StatusCode.INVALID_ARGUMENT, 503: grpc.StatusCode.UNAVAILABLE}
UINT8_CONTENTS = "uint_contents"  # where the protocol puts UINT8 values
GRACE_S = 10  # seconds calls in flight get when the process exits, as granian gives the HTTP ones


def _value(parameter: Any) -> Any:
    """An InferParameter's value (bool, int, str or float), None when none is set."""
    choice = parameter.WhichOneof("parameter_choice")
    return None if choice is None else getattr(parameter, choice)


def request_header(request: Any) -> tuple[dict[str, Any], bytes]:
    """(the HTTP API's JSON header, its binary part) for a ModelInferRequest; a 400 ApiError for what only gRPC can
    get wrong (raw and typed contents mixed, UINT8 values outside ``uint_contents``, no values at all)."""
    raw = request.raw_input_contents
    if raw and len(raw) != len(request.inputs):
        raise ApiError(400, f"raw_input_contents holds {len(raw)} tensors for {len(request.inputs)} inputs; send one "
                            "per input, in order, or none")
    inputs = []
    for i, tensor in enumerate(request.inputs):
        entry: dict[str, Any] = {"name": tensor.name, "datatype": tensor.datatype, "shape": list(tensor.shape)}
        given = [field.name for field, _ in tensor.contents.ListFields()]
        if raw:
            if given:
                raise ApiError(400, f"input {tensor.name!r} has both contents and raw_input_contents; send one")
            entry["parameters"] = {"binary_data_size": len(raw[i])}
        elif given:
            if tensor.datatype == INPUT_DATATYPE and given != [UINT8_CONTENTS]:
                raise ApiError(400, f"input {tensor.name!r} is {INPUT_DATATYPE}: its values go in contents."
                                    f"{UINT8_CONTENTS}, got contents.{', contents.'.join(given)}")
            entry["data"] = list(getattr(tensor.contents, given[0]))
        else:
            raise ApiError(400, f"input {tensor.name!r} has no values; send them in raw_input_contents or in "
                                f"contents.{UINT8_CONTENTS}")
        inputs.append(entry)
    outputs = []
    for output in request.outputs:
        parameters = {key: _value(value) for key, value in output.parameters.items() if key == "classification"}
        outputs.append({"name": output.name, "parameters": parameters})
    header: dict[str, Any] = {"inputs": inputs, "outputs": outputs or None}
    if request.id:
        header["id"] = request.id
    return header, raw[0] if raw else b""


class Servicer:
    """The six calls of the protocol this service answers, each around ``service`` and the holder."""

    def __init__(self, holder: ModelHolder):
        self.holder = holder

    def _answer(self, method: str, call: Callable[[], Any], context: grpc.ServicerContext) -> Any:
        """``call()``'s response, or the call aborted with the status code of its ApiError (INTERNAL for anything
        unexpected); counted in the metrics either way."""
        started = time.perf_counter()
        response, message = None, ""
        try:
            response, code = call(), grpc.StatusCode.OK
        except ApiError as e:
            code, message = STATUS_CODES.get(e.status, grpc.StatusCode.INVALID_ARGUMENT), e.message
        except Exception as e:  # answered, never a dropped call; the trace goes to the log
            log.exception("unhandled error in %s", method)
            code, message = grpc.StatusCode.INTERNAL, f"internal error: {type(e).__name__}"
        self.holder.metrics.observe_request(f"/{SERVICE_NAME}/{method}", code.name, time.perf_counter() - started)
        if response is None:
            context.abort(code, message)
        return response

    def ServerLive(self, request, context):
        return self._answer("ServerLive", lambda: protos.ServerLiveResponse(live=True), context)

    def ServerReady(self, request, context):
        return self._answer("ServerReady", lambda: protos.ServerReadyResponse(ready=self.holder.model is not None),
                            context)

    def ModelReady(self, request, context):
        def ready() -> Any:
            try:
                service.served_model(self.holder, request.name, request.version or None)
            except ApiError:
                return protos.ModelReadyResponse(ready=False)
            return protos.ModelReadyResponse(ready=True)

        return self._answer("ModelReady", ready, context)

    def ServerMetadata(self, request, context):
        return self._answer("ServerMetadata", lambda: protos.ServerMetadataResponse(**service.server_metadata()
                                                                                       .model_dump()), context)

    def ModelMetadata(self, request, context):
        def metadata() -> Any:
            model = service.served_model(self.holder, request.name, request.version or None)
            answer = service.model_metadata(request.name, model).model_dump()
            tensor = protos.ModelMetadataResponse.TensorMetadata
            return protos.ModelMetadataResponse(**{**answer, "inputs": [tensor(**t) for t in answer["inputs"]],
                                                   "outputs": [tensor(**t) for t in answer["outputs"]]})

        return self._answer("ModelMetadata", metadata, context)

    def ModelInfer(self, request, context):
        def infer() -> Any:
            model = service.served_model(self.holder, request.model_name, request.model_version or None)
            header, binary = request_header(request)
            answer, chunks = service.infer(self.holder, request.model_name, model, header, binary,
                                           header_length_given=True, all_binary=True)
            outputs = [protos.ModelInferResponse.InferOutputTensor(name=o.name, datatype=o.datatype, shape=o.shape)
                       for o in answer.outputs]
            return protos.ModelInferResponse(model_name=answer.model_name, model_version=answer.model_version,
                                             id=answer.id or "", outputs=outputs, raw_output_contents=chunks)

        return self._answer("ModelInfer", infer, context)


def _stop_at_exit(server: grpc.Server) -> None:
    threading.main_thread().join()  # returns as the interpreter begins to exit
    server.stop(GRACE_S).wait()


def serve(holder: ModelHolder, port: int, host: str | None = None,
          threads: int | None = None) -> tuple[grpc.Server, int]:
    """Start answering on ``host``:``port`` (0: a free port) with ``threads`` threads running calls: (the server,
    stopped with GRACE_S for the calls in flight when the process exits; the port it listens on). Defaults: ``HOST``
    and ``SERVER_THREADS`` as ``cifar10-serve`` sets them for its workers, else every address and
    ``default_threads``: as the HTTP side. Requests up to ``max_upload_bytes``, HTTP's limit (gRPC's own answer
    beyond it: RESOURCE_EXHAUSTED)."""
    host = host or os.environ.get("HOST") or "0.0.0.0"
    threads = threads or int(os.environ.get("SERVER_THREADS") or default_threads(holder.config))
    server = grpc.server(ThreadPoolExecutor(max_workers=threads, thread_name_prefix="inference-grpc"),
                         options=[("grpc.max_receive_message_length", holder.config.max_upload_bytes)])
    server.add_generic_rpc_handlers((handler(Servicer(holder)),))
    bound = server.add_insecure_port(f"{host}:{port}")
    server.start()
    # granian's workers end without running atexit handlers, but threads that are not daemons are joined when the
    # main thread ends: this one then stops the server, so calls arriving during the exit are refused UNAVAILABLE
    # (a client retries those) while the calls in flight are answered
    threading.Thread(target=_stop_at_exit, args=(server,), name="inference-grpc-stop").start()
    log.info("serving the Open Inference Protocol over gRPC on %s:%d (%d threads)", host, bound, threads)
    return server, bound
