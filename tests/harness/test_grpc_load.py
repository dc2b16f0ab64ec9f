"""The gRPC load generator counts its failed calls by status code: against a small gRPC server on 127.0.0.1 that
refuses every third ModelInfer call with RESOURCE_EXHAUSTED, each refusal is a failed request of that kind."""

from __future__ import annotations

import asyncio
import itertools

import grpc

from cifar10_pipeline.inference.v2.grpc_messages import SERVICE_NAME
from harness.grpc_load import grpc_load

REFUSE_EVERY = 3


async def load_a_refusing_server(concurrency: int, seconds: float) -> dict:
    """``grpc_load`` against a server on a free loopback port that answers ModelInfer with the request's bytes and
    refuses every REFUSE_EVERY-th call."""
    calls = itertools.count(1)

    async def infer(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        if next(calls) % REFUSE_EVERY == 0:
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "busy")
        return request

    echo = grpc.unary_unary_rpc_method_handler(infer)  # bytes in, bytes out: no (de)serializers
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE_NAME, {"ModelInfer": echo}),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        return await grpc_load(port, b"request", concurrency, seconds)
    finally:
        await server.stop(None)


def test_refused_calls_are_failed_requests_by_status_code():
    result = asyncio.run(load_a_refusing_server(concurrency=4, seconds=0.5))
    assert result["failed"] > 0 and result["requests"] > result["failed"]
    assert result["errors"] == {"RESOURCE_EXHAUSTED": result["failed"]}
    # the first call, before the clock, is answered; of the measured ones, every third is refused
    assert result["failed"] == (result["requests"] + 1) // REFUSE_EVERY
