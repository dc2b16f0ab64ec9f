"""Serving benchmark against the servers users would pick instead: this service beside BentoML and MLServer, all
serving the same ONNX file with onnxruntime, and the ceiling, onnxruntime alone in-process.

``python -m benchmarks.peers --out bench-results`` (``--smoke``: tiny durations, concurrency 1 only;
``--servers service``: this service and the ceiling only, no peer venvs). All on this machine's CPUs, the same
cores for every server, for wrk and for the ceiling:

- this service (``cifar10-serve``, its defaults: one worker, batching off) on three endpoints:
  ``/predict`` with an image upload, ``/v2/models/classifier/infer`` with the image as a UINT8 tensor in the
  binary tensor data extension and in JSON.
- BentoML 1.4 (``benchmarks/peers/apps/bento_service.py``: an ``@bentoml.service`` holding an onnxruntime session, one
  endpoint taking the upload, decoding it with Pillow and resizing it to the model's input, as /predict does).
- MLServer 1.7 (``benchmarks/peers/apps/mlserver_model.py``: a custom ``MLModel`` holding an onnxruntime session, as
  MLServer has no ONNX runtime; V2 JSON infer, its REST side having no binary extension).

Each peer runs in its own venv (their pins clash with the project's), made once under
``~/.cache/cifar10-pipeline/peers/<name>`` with ``python -m venv`` and pip and reused while its requirements
stay the same; onnxruntime and Pillow are pinned to this environment's versions, so the engine is the same
everywhere, and the peers open their sessions with the service's session options. Each peer is measured in
the configurations its documentation recommends for CPU (see TUNING), and its best one counts.

Upload-style servers (/predict, BentoML) get the same multipart/form-data body holding the same small PNG;
tensor-protocol servers get the same image as a UINT8 ``[1, H, W, C]`` tensor. Before any load each server's
answer for the image is checked against onnxruntime's. Then wrk drives every server with the same load, at
concurrency 1, 16 and 64, the servers taking turns round by round (a burst of other load on the machine hits
all): requests/s, p50 (of the median round), p99 (of the worst round), failures, and server CPU ms per request
(user + system of all the server's processes, from /proc).

Figures go to ``--out`` as ``peers.json`` and ``peers.md``; a full run records its section in BENCHMARKS.md.

Modules: ``venvs`` (the peers' venvs), ``bodies`` (what every server is sent, and the label it answers),
``ceiling``, ``servers`` (started, and loaded in turns), ``report`` (the goals and the Markdown); ``__main__`` runs
them. ``apps/`` holds the peers' server code and MLServer's settings, run inside the peers' venvs.
"""

from __future__ import annotations

import importlib.metadata
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

APPS_DIR = Path(__file__).resolve().parent / "apps"  # the peers' server code and MLServer's settings
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "cifar10-pipeline" / "peers"
CPUS = len(os.sched_getaffinity(0))
CONCURRENCY = (1, 16, 64)
SERVER_FAMILIES = ("service", "bentoml", "mlserver")
GOAL_RATIO = 3.0  # this service against the best configuration of every peer
GOAL_PREDICT, GOAL_BINARY = 0.20, 0.35  # fractions of the onnxruntime ceiling
PIP_TIMEOUT_S = 1200
BOUNDARY = "cifar10-peers-benchmark"
# what each peer's venv holds besides the peer itself: this environment's engine and decoder
SHARED_PINS = (f"onnxruntime=={ort.__version__}", f"pillow=={importlib.metadata.version('pillow')}")
# uvloop >= 0.22 kills MLServer 1.7.1's parallel workers at start ("There is no current event loop", SeldonIO/MLServer
# issue 2286, unfixed in 1.7): the older uvloop it was released with
PEER_PACKAGES = {"bentoml": ("bentoml==1.4.*",), "mlserver": ("mlserver==1.7.*", "uvloop<0.22")}
# how each peer is tuned for CPU, as its documentation recommends; every configuration listed is measured
TUNING = {
    "bentoml": "BentoML's docs (Workers; Configurations): `workers` processes per Service, one per CPU core for "
               "CPU-bound work (`workers=\"cpu_count\"`), and `threads` for a synchronous endpoint (default 1); "
               "access log off, as in the service",
    "mlserver": "MLServer's docs (Parallel Inference) and Seldon's performance tuning: `parallel_workers` "
                "inference processes in line with the CPU cores (default 1), or 0 to run inference in the "
                "server's own process; `debug: false` (the default, true, logs every request)",
}


@dataclass(frozen=True)
class Counts:
    """How long everything runs; --smoke shrinks it to seconds."""

    warmup_s: int  # load on each server before measuring, discarded (wrk counts whole seconds)
    rounds: int  # the servers take turns this many times at each concurrency
    round_s: int  # load on one server in one round
    ceiling_runs: int  # runs of the in-process ceiling, the best counts
    ceiling_s: float
    concurrency: tuple[int, ...]


FULL = Counts(warmup_s=2, rounds=3, round_s=4, ceiling_runs=3, ceiling_s=3.0, concurrency=CONCURRENCY)
SMOKE = Counts(warmup_s=1, rounds=1, round_s=1, ceiling_runs=1, ceiling_s=0.5, concurrency=(1,))


@dataclass(frozen=True)
class Target:
    """One server endpoint under load: which server process, and what it is sent."""

    name: str  # the row's label
    family: str  # "service", "bentoml" or "mlserver"
    server: str  # key of its Server
    path: str
    body: Path
    headers: dict[str, str]


@dataclass(frozen=True)
class Bodies:
    """The same image, as each kind of server takes it."""

    pixels: np.ndarray  # uint8 [1, H, W, C], what every server ends up running
    multipart: Path  # multipart/form-data, one file field "image" holding the PNG
    v2_json: Path
    v2_binary: Path
    v2_binary_headers: dict[str, str]  # its Content-Type and Inference-Header-Content-Length
    sizes: dict[str, int]  # bytes of the PNG and of each body
