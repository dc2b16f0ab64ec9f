"""The servers, started one at a time (this service, and each peer in each configuration its documentation
recommends), and the load on them, the servers taking turns round by round."""

from __future__ import annotations

import sys
from pathlib import Path

from benchmarks.peers import APPS_DIR, BOUNDARY, CACHE, CPUS, Bodies, Counts, Target
from harness.load import Tally, load_round, wrk
from harness.server import Server, free_port
from harness.v2_requests import INFER_PATH


def start_servers(families: list[str], workdir: Path, onnx_path: Path, bodies: Bodies,
                  versions: dict[str, str]) -> tuple[dict[str, Server], list[Target], list[dict]]:
    """Every server of ``families``, started one at a time: (servers, targets, what each server is)."""
    servers: dict[str, Server] = {}
    targets: list[Target] = []
    info: list[dict] = []
    multipart = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
    v2_json = {"Content-Type": "application/json"}

    def start(key: str, family: str, config: str, env: dict[str, str], **kwargs) -> None:
        print(f"start: {key}", file=sys.stderr, flush=True)
        server = Server(env, workdir / f"server{len(servers)}.log", **kwargs)
        servers[key] = server
        info.append({"server": key, "family": family, "config": config, "start_to_ready_s": server.start_to_ready_s})

    try:
        if "service" in families:
            config = ("python -m cifar10_pipeline.inference.server, its defaults: 1 worker process, batching off, "
                      "threads = CPUs")
            start("service", "service", config,
                  {"INFERENCE_MODEL_PATH": str(onnx_path), "INFERENCE_RELOAD_POLL_S": "0"})
            targets += [
                Target("this service: /predict", "service", "service", "/predict", bodies.multipart, multipart),
                Target("this service: /v2 infer, binary", "service", "service", INFER_PATH, bodies.v2_binary,
                       bodies.v2_binary_headers),
                Target("this service: /v2 infer, JSON", "service", "service", INFER_PATH, bodies.v2_json,
                       v2_json),
            ]
        peer_env = {"PEER_MODEL_PATH": str(onnx_path), "PYTHONDONTWRITEBYTECODE": "1"}
        if "bentoml" in families:
            bentoml = CACHE / "bentoml" / "bin" / "bentoml"
            bentoml_env = {**peer_env, "BENTOML_HOME": str(workdir / "bentoml-home"), "BENTOML_DO_NOT_TRACK": "True",
                           "BENTOML_HOST": "127.0.0.1"}
            for workers, threads in ((CPUS, 1), (1, CPUS)):
                key = f"BentoML {versions['bentoml']}: {workers} worker{'s' * (workers > 1)} x {threads} " \
                      f"thread{'s' * (threads > 1)}"
                config = f"workers={workers}, threads={threads}"
                port = free_port()
                env = {**bentoml_env, "BENTOML_PORT": str(port), "PEER_WORKERS": str(workers),
                       "PEER_THREADS": str(threads)}
                start(key, "bentoml", config, env,
                      command=[str(bentoml), "serve", "bento_service:ImageClassifier",
                               "--working-dir", str(APPS_DIR)], port=port, cwd=workdir)
                targets.append(Target(key, "bentoml", key, "/classify", bodies.multipart, multipart))
        if "mlserver" in families:
            mlserver = CACHE / "mlserver" / "bin" / "mlserver"
            for workers in (CPUS, 0):
                where = f"{workers} parallel workers" if workers else "inference in the server process"
                key = f"MLServer {versions['mlserver']}: {where}"
                config = f"parallel_workers={workers}"
                port = free_port()
                env = {**peer_env, "MLSERVER_HTTP_PORT": str(port), "MLSERVER_GRPC_PORT": str(free_port()),
                       "MLSERVER_METRICS_PORT": str(free_port()), "MLSERVER_PARALLEL_WORKERS": str(workers)}
                start(key, "mlserver", config, env,
                      command=[str(mlserver), "start", str(APPS_DIR)], port=port,
                      ready_path="/v2/health/ready", cwd=workdir)
                targets.append(Target(key, "mlserver", key, INFER_PATH, bodies.v2_json, v2_json))
    except BaseException:
        stop_all(servers)
        raise
    return servers, targets, info


def stop_all(servers: dict[str, Server]) -> None:
    for server in servers.values():
        server.stop()


def load(servers: dict[str, Server], targets: list[Target], counts: Counts, ceiling_rps: float) -> list[dict]:
    """At each concurrency: warm every target, then let them take turns for ``counts.rounds`` rounds."""
    rows = []
    for concurrency in counts.concurrency:
        print(f"load: concurrency {concurrency}, {counts.rounds} rounds of {counts.round_s} s per server",
              file=sys.stderr, flush=True)
        tallies = {target.name: Tally() for target in targets}
        for target in targets:
            wrk(servers[target.server].port, target.body, concurrency, counts.warmup_s, target.path, target.headers)
        for _ in range(counts.rounds):
            for target in targets:
                load_round(servers[target.server], tallies[target.name], target.body, concurrency, counts.round_s,
                           target.path, target.headers)
        for target in targets:
            summary = tallies[target.name].summary()
            rows.append({"server": target.name, "family": target.family, "endpoint": target.path,
                         "concurrency": concurrency, **summary,
                         "fraction_of_ceiling": summary["requests_per_s"] / ceiling_rps})
    return rows
