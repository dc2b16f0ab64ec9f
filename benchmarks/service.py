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
"""

from __future__ import annotations

import argparse
import http.client
import io
import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image

from cifar10_pipeline.deploy.replicas import podman
from cifar10_pipeline.training.datasets.cifar10 import CIFAR10_CLASSES
from harness import REPO
from harness.engines import onnx_forward, time_forward
from harness.load import Tally, failed_cell, load_round, wrk
from harness.models import make_models
from harness.report import machine, write_report
from harness.server import Server

GOAL_RATIO, GOAL_P99_MS = 3.0, 50.0  # the serving goal against the naive baseline
DEFAULT_SERVER = "onnxruntime, batching off"  # the CPU defaults: INFERENCE_BATCH_MAX_SIZE=1, one worker


@dataclass(frozen=True)
class Counts:
    """How much of everything to run; --smoke shrinks it to seconds."""

    warmup_s: int  # load on each server before measuring, discarded (wrk counts whole seconds)
    rounds: int  # the servers take turns this many times, so a burst of other load on the machine hits all
    round_s: int  # load on one server in one round
    latency_runs: int  # batch-1 calls timed per engine
    throughput_runs: int  # batch-256 calls timed per engine
    footprint: bool  # build a fresh serve venv to weigh it (a pip install: ~30 s)


FULL = Counts(warmup_s=3, rounds=5, round_s=4, latency_runs=300, throughput_runs=10, footprint=True)
SMOKE = Counts(warmup_s=1, rounds=1, round_s=1, latency_runs=5, throughput_runs=1, footprint=False)


# ---------------------------------------------------------------- the model, in both engines (harness.models)


def load_torch(checkpoint: Path):
    from cifar10_pipeline.model.torch_net import load_model_file

    return load_model_file(checkpoint)


def engines(checkpoint: Path, onnx_path: Path, counts: Counts) -> list[dict]:
    """Batch-1 latency and batch-256 throughput of the same weights in torch eager and onnxruntime."""
    import torch

    model = load_torch(checkpoint)
    ort_run, shape = onnx_forward(onnx_path)

    def torch_run(x):
        with torch.no_grad():
            return model(torch.from_numpy(x)).numpy()

    runs = {f"torch {torch.__version__} eager": torch_run, f"onnxruntime {ort.__version__}": ort_run}
    rows = [{"engine": name, **time_forward(run, shape, counts.latency_runs, counts.throughput_runs)}
            for name, run in runs.items()]
    many = np.random.default_rng(1).integers(0, 256, (256, *shape), dtype=np.uint8)
    diff = float(np.abs(torch_run(many) - ort_run(many)).max())
    for row in rows:
        row["max_abs_logit_diff"] = diff  # same weights: the two agree
    return rows


# ---------------------------------------------------------------- servers and load


def naive_app():  # a factory: the server calls it
    """The baseline: Flask + torch eager, one image per forward pass (``NAIVE_CHECKPOINT`` names the weights)."""
    import torch
    from flask import Flask, jsonify, request

    model = load_torch(Path(os.environ["NAIVE_CHECKPOINT"]))
    app = Flask(__name__)

    @app.post("/predict")
    def predict():
        image = Image.open(io.BytesIO(request.get_data())).convert("RGB").resize((32, 32))
        with torch.no_grad():
            p = torch.softmax(model(torch.from_numpy(np.asarray(image)).unsqueeze(0))[0], dim=0)
        best = int(p.argmax())
        return jsonify(label=CIFAR10_CLASSES[best], probability=float(p[best]))

    @app.get("/readyz")
    def readyz():
        return jsonify(ready=True)

    return app


def batch_totals(server: Server) -> tuple[float, float] | None:
    """(images, onnxruntime calls) so far from the service's /metrics; None for the naive server."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.request("GET", "/metrics")
    response = conn.getresponse()
    if response.status != 200:
        return None
    samples = dict(line.rsplit(" ", 1) for line in response.read().decode().splitlines() if not line.startswith("#"))
    return float(samples["inference_batch_size_sum"]), float(samples["inference_batch_size_count"])


def load_servers(servers: dict[str, Server], body: Path, concurrency: int, counts: Counts) -> list[dict]:
    """Warm every server, then let them take turns for ``counts.rounds`` rounds; one row per server."""
    tallies = {name: Tally() for name in servers}
    for server in servers.values():
        wrk(server.port, body, concurrency, counts.warmup_s)
    batches_before = {name: batch_totals(server) for name, server in servers.items()}
    for _ in range(counts.rounds):
        for name, server in servers.items():
            load_round(server, tallies[name], body, concurrency, counts.round_s)
    rows = []
    for name, server in servers.items():
        before, after = batches_before[name], batch_totals(server)
        rows.append({
            "server": name,
            **tallies[name].summary(),
            "mean_batch_size": (after[0] - before[0]) / (after[1] - before[1]) if before else None,
            "start_to_ready_s": server.start_to_ready_s,
        })
    return rows


# ---------------------------------------------------------------- footprint


def dir_size_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink()) / 1e6


def serve_venv_mb(workdir: Path) -> float:
    """Size of a fresh venv with only the `serve` extra's packages, pinned as in the images."""
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]["serve"]
    venv = workdir / "serve-venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    # install with this interpreter's pip into the new venv, so the venv holds no pip of its own to weigh
    pip = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check",
         "--ignore-installed", "--prefix", str(venv), "-c", str(REPO / "constraints.txt"), *deps],
        capture_output=True, text=True,
    )
    if pip.returncode != 0:
        raise RuntimeError(f"pip install into {venv} failed:\n{pip.stderr}")
    return dir_size_mb(venv)


# ---------------------------------------------------------------- report


def goal_line(rows: list[dict]) -> str:
    """The serving goal, >= GOAL_RATIO x the naive baseline at p99 <= GOAL_P99_MS, for the default configuration
    (batching off, one worker) and for the best one measured."""
    naive, *_ = (row for row in rows if row["server"].startswith("naive"))
    service = [row for row in rows if row is not naive]

    def verdict(row: dict) -> str:
        ratio = row["requests_per_s"] / naive["requests_per_s"]
        met = ratio >= GOAL_RATIO and row["p99_ms"] <= GOAL_P99_MS
        return f"{row['server']}: {ratio:.2f}x at p99 {row['p99_ms']:.1f} ms, **{'met' if met else 'not met'}**"

    default = next(row for row in service if row["server"] == DEFAULT_SERVER)
    best = max(service, key=lambda row: row["requests_per_s"])
    return (f"Goal >= {GOAL_RATIO:g}x the naive baseline at p99 <= {GOAL_P99_MS:g} ms. Default configuration, "
            f"{verdict(default)}" + ("" if best is default else f"; best configuration, {verdict(best)}") + ".")


def markdown(report: dict) -> str:
    def fmt(value, digits=1):
        return "n/a" if value is None else f"{value:.{digits}f}"

    lines = [
        f"# Serving benchmark ({report['machine']}"
        f"{', smoke counts' if report['smoke'] else ''})",
        "",
        f"Small PNG uploads ({report['upload_bytes']} bytes) from wrk over {report['concurrency']} keep-alive "
        f"connections, {report['measure_s']:g} s measured per server, in turns with the others; p50 of the median "
        "round, p99 of the worst.",
        "",
        "| server | requests/s | p50 ms | p99 ms | server CPU ms/request | mean batch | failed | x naive |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    naive = report["load"][-1]["requests_per_s"]
    for row in report["load"]:
        lines.append(
            f"| {row['server']} | {fmt(row['requests_per_s'])} | {fmt(row['p50_ms'])} | {fmt(row['p99_ms'])} "
            f"| {fmt(row['server_cpu_ms_per_request'], 2)} | {fmt(row['mean_batch_size'])} | {failed_cell(row)} "
            f"| {fmt(row['requests_per_s'] / naive, 2)} |"
        )
    lines += ["", goal_line(report["load"])]
    lines += ["", "| engine (same weights) | batch-1 p50 ms | batch-256 images/s |", "| --- | ---: | ---: |"]
    for row in report["engines"]:
        lines.append(f"| {row['engine']} | {fmt(row['batch1_p50_ms'], 2)} | {fmt(row['batch256_images_per_s'], 0)} |")
    fp = report["footprint"]
    lines += [
        "",
        f"max |logit difference| torch vs onnxruntime: {report['engines'][0]['max_abs_logit_diff']:.2e}",
        "",
        "| footprint | value | goal |",
        "| --- | ---: | ---: |",
        f"| serve venv (MB) | {fmt(fp['serve_venv_mb'])} | <= 250 |",
        f"| CPU image (MB) | {fmt(fp['cpu_image_mb'])} | <= 400 |",
        f"| start to ready (s) | {fmt(fp['start_to_ready_s'], 2)} | <= 3 |",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.service", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("bench-results"), help="directory for service.json/.md")
    parser.add_argument("--concurrency", type=int, default=16, help="client threads (default 16)")
    parser.add_argument("--smoke", action="store_true", help="tiny counts, no venv build: a quick check that it runs")
    args = parser.parse_args(argv)
    counts = SMOKE if args.smoke else FULL
    if shutil.which("wrk") is None:
        parser.error("needs wrk, the HTTP load generator (Debian: apt-get install wrk; or .ci/system-deps.sh)")

    with tempfile.TemporaryDirectory(prefix="bench-service-") as tmp:
        workdir = Path(tmp)
        checkpoint, onnx_path = make_models(workdir)
        body = workdir / "upload.png"
        Image.fromarray(np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(body, "PNG")
        upload_bytes = body.stat().st_size
        service_env = {"INFERENCE_MODEL_PATH": str(onnx_path), "INFERENCE_RELOAD_POLL_S": "0"}
        configs = {
            "onnxruntime, batching on": ({**service_env, "INFERENCE_BATCH_MAX_SIZE": "32"}, None),
            DEFAULT_SERVER: ({**service_env, "INFERENCE_BATCH_MAX_SIZE": "1"}, None),
            "onnxruntime, batching off, 2 worker processes": (
                {**service_env, "INFERENCE_BATCH_MAX_SIZE": "1", "SERVER_WORKERS": "2"}, None),
            "naive: Flask + torch eager, batch 1": ({"NAIVE_CHECKPOINT": str(checkpoint)},
                                                    "benchmarks.service:naive_app"),
        }
        servers: dict[str, Server] = {}
        try:
            for name, (env, app) in configs.items():  # started one at a time, so each start is timed alone
                print(f"start: {name}", file=sys.stderr, flush=True)
                servers[name] = Server(env, workdir / f"server{len(servers)}.log", *(["--app", app] if app else []))
            print(f"load: {counts.rounds} rounds of {counts.round_s:g} s per server", file=sys.stderr, flush=True)
            load_rows = load_servers(servers, body, args.concurrency, counts)
        finally:
            for server in servers.values():
                server.stop()
        print("engines: torch vs onnxruntime", file=sys.stderr, flush=True)
        engine_rows = engines(checkpoint, onnx_path, counts)
        print("footprint", file=sys.stderr, flush=True)
        footprint = {
            "serve_venv_mb": serve_venv_mb(workdir) if counts.footprint else None,
            "cpu_image_mb": podman.image_size_mb(),  # when .ci/containers.sh built it here
            "start_to_ready_s": load_rows[0]["start_to_ready_s"],
        }

    report = {
        "smoke": args.smoke,
        "machine": machine(),
        "concurrency": args.concurrency,
        "upload_bytes": upload_bytes,
        "measure_s": counts.rounds * counts.round_s,
        "load": load_rows,
        "engines": engine_rows,
        "footprint": footprint,
    }
    write_report(args.out, "service", report, markdown(report), record=not args.smoke)
    return 0


if __name__ == "__main__":
    sys.exit(main())
