"""Serving benchmark: the service under load beside a naive baseline, onnxruntime vs torch, and footprint.

``python -m benchmarks.service --out bench-results`` (``--smoke`` for a quick run with tiny counts).
All on this machine's CPU, one after another in the same run:

- load: small PNG uploads over ``--concurrency`` keep-alive connections from wrk (``harness.load``) against the
  service's own server (``cifar10-serve``: granian, one worker, its default threads) serving (a) the service with
  batching on, (b) the service with batching off (the CPU default), and (c) a naive baseline, Flask + torch
  eager with one image per forward pass, on the same server, so that the comparison is of the apps alone;
  requests/s, p50 and p99.
- engines: the same weights in onnxruntime and in torch eager: batch-1 latency, batch-256 throughput.
- footprint: size of a fresh venv holding only the ``serve`` extra, the CPU image's size when
  ``.ci/containers.sh`` has built it, and seconds from starting the server to ``/readyz`` answering 200.

The model is the project's CNN as the default config builds it for CIFAR-10, with random weights (speed does not
depend on them), exported the way ``cifar10-export`` exports a run (``harness.models``). Figures go to ``--out`` as
``service.json`` and ``service.md``.

Modules: ``engines``, ``servers`` (the naive baseline's app, the load), ``footprint``; ``__main__`` runs them and
writes the report.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Counts:
    """How much of everything to run; --smoke shrinks it to seconds."""

    warmup_s: int  # load on each server before measuring, discarded (wrk counts whole seconds)
    rounds: int  # the servers take turns this many times, so a burst of other load on the machine hits all
    round_s: int  # load on one server in one round
    latency_runs: int  # batch-1 calls timed per engine
    throughput_runs: int  # batch-256 calls timed per engine
    footprint: bool  # build a fresh serve venv to weigh it (a pip install)


FULL = Counts(warmup_s=3, rounds=5, round_s=4, latency_runs=300, throughput_runs=10, footprint=True)
SMOKE = Counts(warmup_s=1, rounds=1, round_s=1, latency_runs=5, throughput_runs=1, footprint=False)
