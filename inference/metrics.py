"""Counters and histograms rendered in the Prometheus text format (0.0.4), written by hand."""

from __future__ import annotations

import threading
from collections import Counter

from inference.model import LoadedModel

LATENCY_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _labels(**labels: str) -> str:
    if not labels:
        return ""
    escaped = (str(v).replace("\\", r"\\").replace('"', r"\"").replace("\n", r"\n") for v in labels.values())
    return "{" + ",".join(f'{k}="{v}"' for k, v in zip(labels, escaped)) + "}"


class _Histogram:
    def __init__(self, buckets: tuple[float, ...]):
        self.buckets = buckets
        self.counts = [0] * len(buckets)  # per bucket, not cumulative; summed up when rendered
        self.total = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        for i, bound in enumerate(self.buckets):
            if value <= bound:
                self.counts[i] += 1
                break
        self.total += value
        self.count += 1

    def lines(self, name: str, **labels: str) -> list[str]:
        out, cumulative = [], 0
        for bound, n in zip(self.buckets, self.counts):
            cumulative += n
            out.append(f"{name}_bucket{_labels(**labels, le=f'{bound:g}')} {cumulative}")
        out.append(f"{name}_bucket{_labels(**labels, le='+Inf')} {self.count}")
        out.append(f"{name}_sum{_labels(**labels)} {self.total:.6f}")
        out.append(f"{name}_count{_labels(**labels)} {self.count}")
        return out


class Metrics:
    """Everything /metrics reports; every method is safe to call from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: Counter[tuple[str, int]] = Counter()  # (endpoint, status) -> count
        self._latency: dict[str, _Histogram] = {}  # endpoint -> seconds
        self._batch_size = _Histogram(BATCH_SIZE_BUCKETS)
        self._loads: Counter[str] = Counter()  # "ok" | "refused" -> count

    def observe_request(self, endpoint: str, status: int, seconds: float) -> None:
        with self._lock:
            self._requests[endpoint, status] += 1
            self._latency.setdefault(endpoint, _Histogram(LATENCY_BUCKETS_S)).observe(seconds)

    def observe_batch(self, size: int) -> None:
        with self._lock:
            self._batch_size.observe(size)

    def observe_load(self, ok: bool) -> None:
        with self._lock:
            self._loads["ok" if ok else "refused"] += 1

    def render(self, model: LoadedModel | None) -> str:
        with self._lock:
            lines = [
                "# HELP inference_requests_total HTTP requests answered, by endpoint and status code.",
                "# TYPE inference_requests_total counter",
                *(
                    f"inference_requests_total{_labels(endpoint=e, status=str(s))} {n}"
                    for (e, s), n in sorted(self._requests.items())
                ),
                "# HELP inference_request_duration_seconds Time from request start to response, by endpoint.",
                "# TYPE inference_request_duration_seconds histogram",
                *(line for e, h in sorted(self._latency.items()) for line in h.lines("inference_request_duration_seconds", endpoint=e)),
                "# HELP inference_batch_size Images per onnxruntime call.",
                "# TYPE inference_batch_size histogram",
                *self._batch_size.lines("inference_batch_size"),
                "# HELP inference_model_loads_total Model files loaded (ok) or refused, the first load included.",
                "# TYPE inference_model_loads_total counter",
                *(f"inference_model_loads_total{_labels(result=r)} {self._loads[r]}" for r in ("ok", "refused")),
            ]
        lines += [
            "# HELP inference_ready 1 when a model is loaded and passed its golden self-test.",
            "# TYPE inference_ready gauge",
            f"inference_ready {int(model is not None)}",
            "# HELP inference_model_info The model being served (always 1), labelled with its id.",
            "# TYPE inference_model_info gauge",
        ]
        if model is not None:
            meta = model.info.metadata
            labels = _labels(
                model_id=model.model_id,
                framework=meta.get("framework", ""),
                dataset=meta.get("dataset", ""),
                providers=",".join(model.providers),
            )
            lines.append(f"inference_model_info{labels} 1")
        return "\n".join(lines) + "\n"
