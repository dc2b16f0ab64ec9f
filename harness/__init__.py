"""What the tests, the benchmarks and the reliability scenarios share, written once.

- ``server``: a server process on 127.0.0.1 and a free port (by default the service, as ``cifar10-serve`` runs
  it), ready when /readyz answers 200, stopped with its descendants; ``free_port``; ``call``, one request to it.
- ``load``: wrk, the HTTP load generator: timed runs and their totals, and counted runs that account for every
  request sent (none cut off at the stop) and tally the answers.
- ``grpc_load``: the gRPC counterpart of a timed wrk run: ModelInfer calls in flight from asyncio, wrk's totals.
- ``models``: the project's CNN with seeded random weights, saved and exported as a run's model would be.
- ``engines``: a model's forward pass timed, batch-1 latency and batch-256 throughput; an ONNX file as one.
- ``rollout``: a model rolled through replicas behind HAProxy under load, and a replica killed under load.
- ``postgres``: a throwaway PostgreSQL server.
- ``report``: figures written as JSON and markdown, sections of BENCHMARKS.md and RELIABILITY.md, the machine.

It lives beside ``src/`` and is not installed: run what uses it from the repository root. It imports the project
(``cifar10_pipeline``) and libraries, never ``benchmarks``, ``reliability``, ``tests`` or pytest; its functions
raise their own errors, which a test reports as a failure like any other exception.
"""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent  # the repository root: where commands run, where the documents are
