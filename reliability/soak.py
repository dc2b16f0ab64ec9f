"""Soak: 10 minutes of small PNG uploads to /predict at concurrency 64 (wrk, keep-alive connections) on one
``cifar10-serve`` process with its default settings, after a warm-up; the server's resident
memory (VmRSS of its processes, from /proc) is sampled throughout.

The measured run is counted (``harness.load.Counted``): every request wrk sends is counted, and when the run
ends nothing more is sent and the requests still open are waited for (up to ``REQUEST_TIMEOUT_S``), so none is
cut off by the stop; every answer's body is tallied.

Goals: no failed request of all those sent (answers >= 400, answers later than the request timeout, requests never
answered, refused connections), every answer the model's own prediction for the upload (its model id, top label
and probability, as onnxruntime here computes them), resident memory growth <= 20 MB after the warm-up (the mean
of the last 3 samples minus the mean of the first 3: one sample is noisy, a leak is a trend), and the same worker
process at the end. The p99 is stated.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from harness.load import Counted, failures, wrk
from reliability.serving import (
    REQUEST_TIMEOUT_S,
    answers_correctly,
    cnn_model,
    expected_prediction,
    goal,
    goals_markdown,
    good_png,
    info,
    resident_bytes,
    start_server,
    workdir,
    wrong_answers,
)

NAME = "soak"
CONCURRENCY = 64
GROWTH_GOAL_MB = 20.0
TREND_SAMPLES = 3  # samples averaged at each end for the growth


@dataclass(frozen=True)
class Counts:
    warmup_s: int  # load before the measured run, not counted
    duration_s: int  # the measured run
    sample_s: float  # between memory samples


FULL = Counts(warmup_s=60, duration_s=600, sample_s=15.0)
SMOKE = Counts(warmup_s=2, duration_s=10, sample_s=1.0)


def run(smoke: bool) -> dict[str, Any]:
    counts = SMOKE if smoke else FULL
    model = cnn_model()
    model_path, body = workdir() / "soak.onnx", workdir() / "soak.png"
    model_path.write_bytes(model)
    body.write_bytes(good_png())
    server = start_server("soak", model_path)
    try:
        pid_before = info(server.port)["pid"]
        warmup = wrk(server.port, body, CONCURRENCY, counts.warmup_s)
        print(f"soak: warmed up ({warmup['requests']} requests), {counts.duration_s} s at concurrency {CONCURRENCY}",
              flush=True)
        samples = []  # (seconds since the measured run started, resident bytes)
        started = time.perf_counter()
        load = Counted(server.port, body, CONCURRENCY, max_s=counts.duration_s + 60, timeout_s=REQUEST_TIMEOUT_S)
        try:
            while load.running() and time.perf_counter() - started < counts.duration_s:
                samples.append((time.perf_counter() - started, resident_bytes(server.pids())))
                time.sleep(min(counts.sample_s, max(0.0, counts.duration_s - (time.perf_counter() - started))))
        finally:
            result = load.stop()
        ok_after, compared = answers_correctly(server.port, model)
        pid_after = info(server.port)["pid"]
    finally:
        server.stop()

    mb = [rss / 1e6 for _, rss in samples]
    ends = min(TREND_SAMPLES, len(mb) // 2) or 1
    growth = sum(mb[-ends:]) / ends - sum(mb[:ends]) / ends
    expected = expected_prediction(model, body.read_bytes())
    wrong, why, _ = wrong_answers(result["bodies"], {expected["model_id"]: expected})
    return {
        "concurrency": CONCURRENCY,
        "warmup_s": counts.warmup_s,
        "duration_s": counts.duration_s,
        "load": result,
        "requests_per_s": result["requests"] / result["seconds"],
        "wrong_answers": wrong,
        "wrong_answer_reasons": why,
        "rss_samples": [{"t_s": round(t, 1), "rss_mb": round(rss / 1e6, 2)} for t, rss in samples],
        "rss_growth_mb": growth,
        "rss_range_mb": max(mb) - min(mb),
        "worker_pid": {"before": pid_before, "after": pid_after},
        "good_request_after": ok_after,
        "goals": [
            goal(f"0 failed of every request sent in {counts.duration_s} s at concurrency {CONCURRENCY}",
                 result["failed"] == 0 and result["sent"] > 0, failures(result)),
            goal("every answer the model's prediction for the upload (model id, label, probability)",
                 wrong == 0 and result["requests"] > 0,
                 f"{wrong} wrong of {result['requests']:,} answers" + "".join(f"; {w}" for w in why[:3])),
            goal(f"resident memory growth <= {GROWTH_GOAL_MB:g} MB after warm-up", growth <= GROWTH_GOAL_MB,
                 f"{growth:+.1f} MB ({len(mb)} samples, {mb[0]:.1f} -> {mb[-1]:.1f} MB)"),
            goal("same worker process, good request answered correctly at the end",
                 pid_before == pid_after and ok_after, f"pid {pid_before} -> {pid_after}; {compared}"),
        ],
    }


def markdown(figures: dict[str, Any]) -> str:
    load = figures["load"]
    samples = figures["rss_samples"]
    lines = [
        f"# Soak: {figures['duration_s']} s of /predict at concurrency {figures['concurrency']}",
        "",
        f"wrk, {figures['concurrency']} keep-alive connections posting a small PNG, after a {figures['warmup_s']} s "
        "warm-up, to one `cifar10-serve` process (default settings: batching off, one worker).",
        "",
        ("| sent | answered | failed | unanswered | open at the stop | wrong answers | requests/s | p50 ms | p99 ms "
         "| memory growth MB | memory range MB |"),
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        f"| {load['sent']:,} | {load['requests']:,} | {load['failed']} | {load['unanswered']} | {load['open_at_stop']} "
        f"| {figures['wrong_answers']} | {figures['requests_per_s']:.1f} | {load['p50_ms']:.1f} "
        f"| {load['p99_ms']:.1f} | {figures['rss_growth_mb']:+.1f} | {figures['rss_range_mb']:.1f} |",
        "",
        (f"Every request sent is counted: at the end nothing more is sent and the {load['open_at_stop']} still open "
         f"are waited for (up to {load['timeout_s']:g} s, the request timeout); an answer is wrong unless it is the "
         "model's own prediction for the upload (model id, top label and probability, from onnxruntime here)."),
        "",
        "Resident memory of the server's processes (granian's main process and its worker, VmRSS summed) "
        "while the load ran:",
        "",
        "| s | RSS MB | change MB |",
        "| ---: | ---: | ---: |",
    ]
    step = max(1, len(samples) // 12)  # about a dozen rows; the JSON holds every sample
    shown = samples[::step] + ([samples[-1]] if (len(samples) - 1) % step else [])
    for sample in shown:
        change = sample["rss_mb"] - samples[0]["rss_mb"]
        lines.append(f"| {sample['t_s']:.0f} | {sample['rss_mb']:.1f} | {change:+.1f} |")
    lines += ["", *goals_markdown(figures["goals"])]
    return "\n".join(lines) + "\n"
