"""The service's configuration: one typed dataclass, filled from ``INFERENCE_*`` environment variables."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path

ENV_PREFIX = "INFERENCE_"
# prometheus_client's variable for the folder several worker processes share their metrics in; it is read when
# prometheus_client is imported, so the server sets it before any worker imports the app
METRICS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"
# the file the server writes the port it listens on to (``--port-file``): how a launcher that asked for port 0 (any
# free port; tests and benchmarks start every server so, and none races another for a port) learns which it got
PORT_FILE_ENV = "SERVER_PORT_FILE"


@dataclass(frozen=True)
class ServiceConfig:
    """Every knob of the service. The model file itself carries labels, input size and channels."""

    model_path: Path = Path("models/model.onnx")
    # whole request body, all files together (bytes); Flask's MAX_CONTENT_LENGTH answers 413 beyond it
    max_upload_bytes: int = 16 * 1024 * 1024
    max_files: int = 16  # files in one multipart request
    # decoded pixels of one image (width * height): the decompression-bomb guard. 24 Mpx is a 6000x4000
    # photo, about 72 MB once decoded as RGB; Pillow's MAX_IMAGE_PIXELS is set to the same number.
    max_pixels: int = 24_000_000
    # images gathered into one onnxruntime call; 1 turns batching off (each image runs its own call).
    # Off by default: on CPU the CNN's cost per image is flat in the batch size, so batching only adds the
    # hand-off between threads (the serving benchmark runs both: BENCHMARKS.md). The GPU image turns it on
    # (INFERENCE_BATCH_MAX_SIZE=32), where one call on many images costs little more than one on one image.
    batch_max_size: int = 1
    # how long a batching thread waits for more images after the first one arrived (milliseconds)
    batch_max_wait_ms: float = 2.0
    # threads that each gather a batch and run it: one per CPU keeps every core busy, as one batch runs
    # while the next gathers. Default: the CPUs this process may use.
    batch_workers: int = field(default_factory=lambda: len(os.sched_getaffinity(0)))
    # threads onnxruntime splits one call over (0: its default, one per physical core). 1 by default, as the
    # parallelism comes from the batch workers (or from concurrent requests when batching is off); splitting
    # a small image's convolutions across threads costs more CPU in synchronisation than it saves
    intra_op_threads: int = 1
    # onnxruntime execution providers in priority order, by name or short name (cpu, cuda, openvino:
    # providers.SHORT_NAMES); empty: CUDA when available, then CPU
    providers: tuple[str, ...] = ()
    # how long a request waits for its images' onnxruntime calls (seconds) before it is answered 503: a stuck call
    # (a hung GPU, a deadlock) then costs one batching thread, never the request or the server. Far above any
    # call's time (a full batch on the CPU takes milliseconds), below the 60 s proxies commonly give a request
    infer_timeout_s: float = 30.0
    # how often the model file is checked for a change (seconds); 0 turns hot swapping off
    reload_poll_s: float = 1.0
    # the model's name in the Open Inference Protocol's URLs (/v2/models/<name>/...); its version is the file's id
    model_name: str = "classifier"
    # the port of the Open Inference Protocol over gRPC (``v2.grpc_service``), beside HTTP in the same process;
    # 0: off. Read from GRPC_PORT (like the server's PORT, without the INFERENCE_ prefix)
    grpc_port: int = field(default=0, metadata={"env": "GRPC_PORT"})

    def __post_init__(self) -> None:
        positive = ("max_upload_bytes", "max_files", "max_pixels", "batch_max_size", "batch_workers")
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("batch_max_wait_ms", "reload_poll_s", "intra_op_threads"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.infer_timeout_s <= 0:
            raise ValueError(f"infer_timeout_s must be > 0, got {self.infer_timeout_s}")
        if not 0 <= self.grpc_port <= 65535:
            raise ValueError(f"grpc_port must be in 0..65535 (0: off), got {self.grpc_port}")
        if not self.model_name or "/" in self.model_name or self.model_name != self.model_name.strip():
            raise ValueError(f"model_name must be a non-empty URL path segment (no '/'), got {self.model_name!r}")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> ServiceConfig:
        """Read ``INFERENCE_<FIELD>`` (e.g. ``INFERENCE_MODEL_PATH``, ``INFERENCE_PROVIDERS=a,b``), or the variable a
        field names in its metadata (``GRPC_PORT``); unset: default."""
        values: dict[str, object] = {}
        names = env_variables()
        for f in fields(cls):
            var = names[f.name]
            raw = environ.get(var, "").strip()
            if not raw:
                continue
            default = f.default_factory() if f.default is MISSING else f.default
            try:
                if isinstance(default, tuple):
                    values[f.name] = tuple(p.strip() for p in raw.split(",") if p.strip())
                else:
                    values[f.name] = type(default)(raw)
            except ValueError as e:
                raise ValueError(f"{var}={raw!r} is not a valid {type(default).__name__}") from e
        return cls(**values)


def env_variables() -> dict[str, str]:
    """Each field's environment variable: ``INFERENCE_<FIELD>``, or the one its metadata names (``GRPC_PORT``)."""
    return {f.name: f.metadata.get("env", ENV_PREFIX + f.name.upper()) for f in fields(ServiceConfig)}


def default_threads(config: ServiceConfig) -> int:
    """Threads that run requests, per protocol, unless SERVER_THREADS says otherwise: the CPUs, or the batch size
    when batching is on (a batch can only grow as large as the requests in flight)."""
    cpus = len(os.sched_getaffinity(0))
    return cpus if config.batch_max_size == 1 else max(cpus, config.batch_max_size)
