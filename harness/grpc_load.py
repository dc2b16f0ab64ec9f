"""gRPC load on the Open Inference Protocol's ModelInfer, from asyncio (``grpc.aio``): ``concurrency`` calls in
flight on one channel (one HTTP/2 connection, as tritonclient opens), the request serialized once and the answer
left unparsed, so the client costs little beside the server. Its totals take the form of wrk's (``harness.load``),
the failed calls counted by status code. Triton's perf_analyzer is not installable here (its PyPI package is an
empty placeholder).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import grpc
import numpy as np

from cifar10_pipeline.inference.v2.grpc_messages import SERVICE_NAME

CALL_TIMEOUT_S = 30.0  # as wrk's --timeout


def infer_call(channel: grpc.aio.Channel):
    """ModelInfer taking and giving bytes: the load generator neither builds nor parses messages per call."""
    return channel.unary_unary(f"/{SERVICE_NAME}/ModelInfer")


async def grpc_load(port: int, request: bytes, concurrency: int, seconds: float) -> dict:
    """``concurrency`` ModelInfer calls of ``request`` (serialized) in flight for ``seconds`` on one channel to
    127.0.0.1:``port``: wrk's totals and percentiles, the failed calls by status code (``errors``). Every call sent
    is counted: a caller sends its next call only once the last is answered or failed, and the round ends when every
    caller's last call has (so ``failed`` 0 means no call sent in the round failed, those in flight at its end
    included)."""
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        infer = infer_call(channel)
        await infer(request, timeout=CALL_TIMEOUT_S)  # connected before the clock starts
        started = time.perf_counter()
        end = started + seconds

        async def caller() -> None:
            while time.perf_counter() < end:
                sent = time.perf_counter()
                try:
                    await infer(request, timeout=CALL_TIMEOUT_S)
                except grpc.RpcError as e:
                    errors[e.code().name] += 1
                    continue
                latencies.append(time.perf_counter() - sent)

        await asyncio.gather(*(caller() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    ms = 1000 * np.asarray(latencies or [np.nan])
    failed = sum(errors.values())
    return {"requests": len(latencies) + failed, "seconds": elapsed, "failed": failed, "errors": dict(errors),
            "p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99))}
