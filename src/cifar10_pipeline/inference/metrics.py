"""What /metrics reports, with prometheus_client: requests, latency, batch sizes, model loads and the model.

One worker process: every app has a registry of its own (tests build many apps in one process). Several
worker processes (``python -m cifar10_pipeline.inference.server --workers N``): the server sets ``PROMETHEUS_MULTIPROC_DIR``
before the workers start, each worker's metrics go to files there, and every scrape adds up all workers'
(``MultiProcessCollector``), whichever worker answers it.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics, multiprocess
from prometheus_client.exposition import choose_encoder

from cifar10_pipeline.inference.config import METRICS_DIR_ENV
from cifar10_pipeline.inference.runtime import LoadedModel

# no *_created series: one more sample per counter and histogram child that dashboards of this service never use
disable_created_metrics()

LATENCY_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
_LIVE_FILE = re.compile(r"gauge_live\w+?_(\d+)\.db")  # a live-mode gauge's file, per process id


def multiprocess_dir() -> Path | None:
    """The folder shared by the worker processes, when the server runs several."""
    return Path(os.environ[METRICS_DIR_ENV]) if os.environ.get(METRICS_DIR_ENV) else None


class Metrics:
    """Everything /metrics reports; every method is safe to call from any thread."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.shared = multiprocess_dir()
        # endpoint: an HTTP route ("/v2/models/<name>/infer") and its status code ("200"), or a gRPC method's path
        # ("/inference.GRPCInferenceService/ModelInfer") and its status code's name ("OK", "NOT_FOUND")
        self.requests = Counter("inference_requests", "Requests answered (HTTP and gRPC), by endpoint and status code.",
                                ["endpoint", "status"], registry=self.registry)
        self.latency = Histogram("inference_request_duration_seconds",
                                 "Time from request start to response (HTTP and gRPC), by endpoint and status code.",
                                 ["endpoint", "status"], buckets=LATENCY_BUCKETS_S, registry=self.registry)
        self.batch_size = Histogram("inference_batch_size", "Images per onnxruntime call.",
                                    buckets=BATCH_SIZE_BUCKETS, registry=self.registry)
        self.timeouts = Counter("inference_timeouts", "Requests answered 503 because their onnxruntime calls took "
                                "longer than infer_timeout_s.", registry=self.registry)
        self.loads = Counter("inference_model_loads", "Model files loaded (ok) or refused, the first load "
                             "included; every ok after the first is a swap.", ["result"], registry=self.registry)
        # the gauges describe each live worker: ready only if every worker is, and each worker's model
        self.ready = Gauge("inference_ready", "1 when a model is loaded and passed its golden self-test.",
                           registry=self.registry, multiprocess_mode="livemin")
        self.model_info = Gauge("inference_model_info", "The model being served (1) or replaced (0), by id.",
                                ["model_id", "framework", "dataset", "providers"], registry=self.registry,
                                multiprocess_mode="liveall")
        for result in ("ok", "refused"):
            self.loads.labels(result)  # both series from the start: a rate() needs the zero
        self.ready.set(0)

    def observe_request(self, endpoint: str, status: int, seconds: float) -> None:
        self.requests.labels(endpoint, str(status)).inc()
        self.latency.labels(endpoint, str(status)).observe(seconds)

    def observe_batch(self, size: int) -> None:
        self.batch_size.observe(size)

    def observe_timeout(self) -> None:
        self.timeouts.inc()

    def observe_load(self, ok: bool, old: LoadedModel | None = None, new: LoadedModel | None = None) -> None:
        """A load attempt; on success ``new`` replaces ``old`` (None at the first load)."""
        self.loads.labels("ok" if ok else "refused").inc()
        if not ok:
            return
        if old is not None:
            self.model_info.labels(*_model_labels(old)).set(0)
        self.model_info.labels(*_model_labels(new)).set(1)
        self.ready.set(1)

    def render(self, accept: str | None) -> tuple[bytes, str]:
        """(body, content type) of this process's metrics, or of every worker process's when there are several,
        in the format the scraper's Accept header asks for (Prometheus text by default, or OpenMetrics)."""
        encode, content_type = choose_encoder(accept or "")
        if self.shared is None:
            return encode(self.registry), content_type
        for path in self.shared.glob("gauge_live*.db"):  # workers that died (and were replaced) leave files
            match = _LIVE_FILE.fullmatch(path.name)
            if match and not _alive(int(match[1])):
                multiprocess.mark_process_dead(int(match[1]), str(self.shared))
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, str(self.shared))
        return encode(registry), content_type


def _model_labels(model: LoadedModel) -> tuple[str, str, str, str]:
    meta = model.info.metadata
    return (model.model_id, str(meta.get("framework", "")), str(meta.get("dataset", "")), ",".join(model.providers))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, another user's
        return True
    return True
