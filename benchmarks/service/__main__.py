"""``python -m benchmarks.service``: the servers, the engines and the footprint measured, the report written."""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from benchmarks import service
from benchmarks.service import FULL, SMOKE
from benchmarks.service.engines import engines
from benchmarks.service.footprint import serve_venv_mb
from benchmarks.service.servers import load_servers
from cifar10_pipeline.deploy.replicas import podman
from harness.load import failed_cell
from harness.models import make_models
from harness.report import machine, write_report
from harness.server import Server

GOAL_RATIO, GOAL_P99_MS = 3.0, 50.0  # the serving goal against the naive baseline
DEFAULT_SERVER = "onnxruntime, batching off"  # the CPU defaults: INFERENCE_BATCH_MAX_SIZE=1, one worker


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
    parser = argparse.ArgumentParser(prog="python -m benchmarks.service", description=service.__doc__.split("\n\n")[0])
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
                                                    "benchmarks.service.servers:naive_app"),
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
