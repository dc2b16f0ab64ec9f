"""gRPC beside HTTP: the Open Inference Protocol's inference call on both of the service's ports, under the same load.

``python -m benchmarks.grpc_load --out bench-results`` (``--smoke`` for a quick run with tiny counts).

One server process (``cifar10-serve`` with ``GRPC_PORT``: granian for HTTP, grpcio for gRPC, one model, one batcher)
for each configuration measured: batching off (the CPU image's default) and on (the GPU image's, 32). The same
request on both ports: one 32x32x3 UINT8 image, the logits back as raw bytes, as Triton's clients send it:

- HTTP: ``POST /v2/models/classifier/infer`` with binary tensor data (a JSON header, then the 3072 bytes), from wrk
  (``harness.load``, C) over ``concurrency`` keep-alive connections, as the serving benchmark loads /predict.
- gRPC: ``ModelInfer`` with ``raw_input_contents``, from an asyncio load generator on ``grpc.aio``
  (``harness.grpc_load``): ``concurrency`` calls in flight on one channel, the request serialized once and the
  answer left unparsed.

At concurrency 1, 16 and 64, the protocols take turns round by round, so a burst of other load on the machine hits
both. Before any load each port's logits are checked against a direct onnxruntime call. Per protocol and
concurrency: requests/s, p50 (of the median round) and p99 (of the worst round), the server's and the load
generator's CPU per request (wrk's read from its rusage, the gRPC generator's from this process's). Figures go to
``--out`` as ``grpc_load.json`` and ``grpc_load.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from harness.grpc_load import grpc_load
from harness.load import Tally, failed_cell, load_round, wrk
from harness.models import make_models
from harness.report import machine, write_report
from harness.server import Server, free_port
from harness.v2_requests import INFER_PATH, grpc_logits, grpc_request, http_logits, http_request

CONCURRENCIES = (1, 16, 64)
SERVERS = {  # name: settings
    "batching off (CPU default)": {"INFERENCE_BATCH_MAX_SIZE": "1"},
    "batching on (32)": {"INFERENCE_BATCH_MAX_SIZE": "32"},
}


@dataclass(frozen=True)
class Counts:
    """How much of everything to run; --smoke shrinks it to seconds."""

    warmup_s: int  # load on each port before measuring, discarded
    rounds: int  # the protocols take turns this many times at each concurrency
    round_s: int  # load on one port in one round (wrk counts whole seconds)


FULL = Counts(warmup_s=2, rounds=3, round_s=4)
SMOKE = Counts(warmup_s=1, rounds=1, round_s=1)


def _children_cpu_s() -> float:
    """CPU seconds of this process's finished children: wrk's, once each run has been waited for."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measure(server: Server, grpc_port: int, body_file: Path, headers: dict[str, str], request: bytes,
            counts: Counts) -> list[dict]:
    """Both protocols at each concurrency, in turns; one row per (protocol, concurrency)."""
    wrk(server.port, body_file, max(CONCURRENCIES), counts.warmup_s, INFER_PATH, headers)
    asyncio.run(grpc_load(grpc_port, request, max(CONCURRENCIES), counts.warmup_s))
    rows = []
    for concurrency in CONCURRENCIES:
        tallies = {"HTTP": Tally(), "gRPC": Tally()}
        client_cpu = {"HTTP": 0.0, "gRPC": 0.0}
        for _ in range(counts.rounds):
            before = _children_cpu_s()
            load_round(server, tallies["HTTP"], body_file, concurrency, counts.round_s, INFER_PATH, headers)
            client_cpu["HTTP"] += _children_cpu_s() - before
            server_before, before = server.cpu_seconds(), time.process_time()
            result = asyncio.run(grpc_load(grpc_port, request, concurrency, counts.round_s))
            client_cpu["gRPC"] += time.process_time() - before
            tallies["gRPC"].add(result, server.cpu_seconds() - server_before)
        for protocol, tally in tallies.items():
            summary = tally.summary()
            rows.append({"protocol": protocol, "concurrency": concurrency, **summary,
                         "client_cpu_ms_per_request": 1000 * client_cpu[protocol] / max(summary["requests"], 1)})
    return rows


def markdown(report: dict) -> str:
    lines = [
        f"# Open Inference Protocol: gRPC beside HTTP ({report['machine']}"
        f"{', smoke counts' if report['smoke'] else ''})",
        "",
        "One inference request, one 32x32x3 UINT8 image, logits back as raw bytes, to one server process on both "
        "ports: HTTP `POST /v2/models/classifier/infer` with binary tensor data from wrk over keep-alive "
        "connections, gRPC `ModelInfer` with `raw_input_contents` from an asyncio `grpc.aio` generator, all calls "
        f"on one channel. {report['measure_s']:g} s measured per protocol and concurrency, the protocols in turns; "
        "p50 of the median round, p99 of the worst. Client CPU: wrk's (C) or the gRPC generator's (Python), per "
        "request. The model: the project's CNN for CIFAR-10 (random weights), exported with parity.",
    ]
    for server, rows in report["servers"].items():
        lines += ["", f"## {server}", "",
                  "| protocol | concurrency | requests/s | p50 ms | p99 ms | server CPU ms/request "
                  "| client CPU ms/request | failed |",
                  "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for row in rows:
            lines.append(f"| {row['protocol']} | {row['concurrency']} | {row['requests_per_s']:.1f} "
                         f"| {row['p50_ms']:.2f} | {row['p99_ms']:.2f} | {row['server_cpu_ms_per_request']:.2f} "
                         f"| {row['client_cpu_ms_per_request']:.2f} | {failed_cell(row)} |")
    lines += ["", f"Both ports' logits equal onnxruntime's (max |difference| {report['max_abs_logit_diff']:.1e}).", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.grpc_load", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("bench-results"), help="directory for grpc_load.json/.md")
    parser.add_argument("--smoke", action="store_true", help="tiny counts: a quick check that it runs")
    args = parser.parse_args(argv)
    counts = SMOKE if args.smoke else FULL
    if shutil.which("wrk") is None:
        parser.error("needs wrk, the HTTP load generator (Debian: apt-get install wrk; or .ci/system-deps.sh)")

    image = np.random.default_rng(0).integers(0, 256, (1, 32, 32, 3), dtype=np.uint8)
    body, headers = http_request(image)
    request = grpc_request(image)
    results: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-grpc-") as tmp:
        workdir = Path(tmp)
        _, onnx_path = make_models(workdir)
        expected = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"]).run(
            None, {"image": image})[0].ravel()
        body_file = workdir / "infer.bin"
        body_file.write_bytes(body)
        diff = 0.0
        for name, settings in SERVERS.items():
            grpc_port = free_port()
            env = {"INFERENCE_MODEL_PATH": str(onnx_path), "INFERENCE_RELOAD_POLL_S": "0", "GRPC_PORT": str(grpc_port),
                   **settings}
            print(f"server: {name}", file=sys.stderr, flush=True)
            with Server(env, workdir / f"server-{len(results)}.log") as server:
                for logits in (http_logits(server.port, body, headers, expected.size),
                               asyncio.run(grpc_logits(grpc_port, request))):
                    diff = max(diff, float(np.abs(logits - expected).max()))
                if diff > 1e-4:
                    raise RuntimeError(f"the served logits differ from onnxruntime's by {diff}")
                results[name] = measure(server, grpc_port, body_file, headers, request, counts)

    report = {"smoke": args.smoke, "machine": machine(), "measure_s": counts.rounds * counts.round_s,
              "concurrencies": list(CONCURRENCIES), "max_abs_logit_diff": diff, "servers": results}
    write_report(args.out, "grpc_load", report, markdown(report), record=not args.smoke)
    return 0


if __name__ == "__main__":
    sys.exit(main())
