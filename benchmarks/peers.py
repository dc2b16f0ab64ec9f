"""Serving benchmark against the servers users would pick instead: this service beside BentoML and MLServer, all
serving the same ONNX file with onnxruntime, and the ceiling, onnxruntime alone in-process.

``python -m benchmarks.peers --out bench-results`` (``--smoke``: tiny durations, concurrency 1 only;
``--servers service``: this service and the ceiling only, no peer venvs). All on this machine's CPUs, the same
cores for every server, for wrk and for the ceiling:

- this service (``cifar10-serve``, its defaults: one worker, batching off) on three endpoints:
  ``/predict`` with an image upload, ``/v2/models/classifier/infer`` with the image as a UINT8 tensor in the
  binary tensor data extension and in JSON.
- BentoML 1.4 (``benchmarks/peers/bento_service.py``: an ``@bentoml.service`` holding an onnxruntime session, one
  endpoint taking the upload, decoding it with Pillow and resizing it to the model's input, as /predict does).
- MLServer 1.7 (``benchmarks/peers/mlserver_model.py``: a custom ``MLModel`` holding an onnxruntime session, as
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
"""

from __future__ import annotations

import argparse
import http.client
import importlib.metadata
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image

from cifar10_pipeline.contract import INPUT_NAME, OUTPUT_NAME
from cifar10_pipeline.inference.runtime import load_session
from cifar10_pipeline.inference.v2.body import HEADER_LENGTH
from harness.load import Tally, failed_cell, load_round, wrk
from harness.models import make_models
from harness.report import machine, write_report
from harness.server import Server, free_port

PEERS_DIR = Path(__file__).resolve().parent / "peers"  # the peers' server code and MLServer's settings
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
    v2_binary_header_length: int
    sizes: dict[str, int]  # bytes of the PNG and of each body


# ---------------------------------------------------------------- the peers' venvs


def peer_venv(name: str) -> tuple[Path, str]:
    """(python, peer version) of the peer's venv under CACHE, made when missing or when its requirements changed."""
    venv = CACHE / name
    requirements = [*PEER_PACKAGES[name], *SHARED_PINS]
    python, marker = venv / "bin" / "python", venv / ".requirements"
    if not (python.exists() and marker.exists() and marker.read_text().split() == requirements):
        print(f"venv: {venv} ({' '.join(requirements)})", file=sys.stderr, flush=True)
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
        pip = subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *requirements],
                             capture_output=True, text=True, timeout=PIP_TIMEOUT_S)
        if pip.returncode != 0:
            raise RuntimeError(f"pip install into {venv} failed:\n{pip.stderr[-3000:]}")
        marker.write_text("\n".join(requirements) + "\n")
    version = subprocess.run([str(python), "-c", f"import importlib.metadata as m; print(m.version({name!r}))"],
                             capture_output=True, text=True, check=True, timeout=60).stdout.strip()
    return python, version


# ---------------------------------------------------------------- what every server is sent


def make_bodies(workdir: Path, shape: tuple[int, int, int]) -> Bodies:
    """The same random PNG as the serving benchmark's, at the model's input ``shape`` (H, W, C), and its tensor
    forms."""
    height, width, channels = shape
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).convert(
        "RGB" if channels == 3 else "L")
    png = io.BytesIO()
    image.save(png, "PNG")
    pixels = np.asarray(image, dtype=np.uint8).reshape(1, height, width, channels)

    multipart = workdir / "upload.multipart"
    multipart.write_bytes(b"".join([
        f"--{BOUNDARY}\r\n".encode(),
        b'Content-Disposition: form-data; name="image"; filename="upload.png"\r\n',
        b"Content-Type: image/png\r\n\r\n", png.getvalue(), f"\r\n--{BOUNDARY}--\r\n".encode(),
    ]))
    tensor = {"name": INPUT_NAME, "datatype": "UINT8", "shape": list(pixels.shape)}
    v2_json = workdir / "infer.json"
    v2_json.write_text(json.dumps({"inputs": [{**tensor, "data": pixels.ravel().tolist()}]}))
    header = json.dumps({
        "inputs": [{**tensor, "parameters": {"binary_data_size": pixels.nbytes}}],
        "outputs": [{"name": OUTPUT_NAME, "parameters": {"binary_data": True}}],
    }).encode()
    v2_binary = workdir / "infer.bin"
    v2_binary.write_bytes(header + pixels.tobytes())
    sizes = {"png": len(png.getvalue()), "multipart": multipart.stat().st_size, "v2_json": v2_json.stat().st_size,
             "v2_binary": v2_binary.stat().st_size}
    return Bodies(pixels, multipart, v2_json, v2_binary, len(header), sizes)


def answer(target: Target, port: int, labels: list[str]) -> str:
    """The label a server answers for the image: from its JSON label, or the argmax of its logits (V2: JSON or
    binary)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("POST", target.path, target.body.read_bytes(), target.headers)
    response = conn.getresponse()
    data = response.read()
    if response.status != 200:
        raise RuntimeError(f"{target.name}: HTTP {response.status}: {data[:500]!r}")
    header_length = response.getheader(HEADER_LENGTH)
    if header_length is not None:  # binary tensor data: the JSON header, then the logits as raw float32
        logits = np.frombuffer(data[int(header_length):], "<f4")
    else:
        body = json.loads(data)
        if "predictions" in body:  # this service's /predict
            return body["predictions"][0]["label"]
        if "label" in body:  # BentoML's endpoint
            return body["label"]
        logits = np.asarray(body["outputs"][0]["data"], dtype=np.float32)
    return labels[int(logits.argmax())]


# ---------------------------------------------------------------- the ceiling


def ceiling(session: ort.InferenceSession, pixels: np.ndarray, counts: Counts) -> dict:
    """onnxruntime alone, in this process, on the same cores: batch-1 images/s with as many threads calling
    ``run`` on ``session`` (opened as the service opens it) as there are CPUs; the best of
    ``counts.ceiling_runs``."""

    def run_for(seconds: float) -> float:
        done = [0] * CPUS
        deadline = time.perf_counter() + seconds

        def work(i: int) -> None:
            while time.perf_counter() < deadline:
                session.run([OUTPUT_NAME], {INPUT_NAME: pixels})
                done[i] += 1

        threads = [threading.Thread(target=work, args=(i,)) for i in range(CPUS)]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return sum(done) / (time.perf_counter() - started)

    run_for(min(1.0, counts.ceiling_s))  # warm up
    runs = [run_for(counts.ceiling_s) for _ in range(counts.ceiling_runs)]
    return {"threads": CPUS, "intra_op_threads": 1, "runs_images_per_s": runs, "images_per_s": max(runs)}


# ---------------------------------------------------------------- servers


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
            infer = "/v2/models/classifier/infer"
            binary = {"Content-Type": "application/octet-stream", HEADER_LENGTH: str(bodies.v2_binary_header_length)}
            targets += [
                Target("this service: /predict", "service", "service", "/predict", bodies.multipart, multipart),
                Target("this service: /v2 infer, binary", "service", "service", infer, bodies.v2_binary, binary),
                Target("this service: /v2 infer, JSON", "service", "service", infer, bodies.v2_json, v2_json),
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
                               "--working-dir", str(PEERS_DIR)], port=port, cwd=workdir)
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
                      command=[str(mlserver), "start", str(PEERS_DIR)], port=port,
                      ready_path="/v2/health/ready", cwd=workdir)
                targets.append(Target(key, "mlserver", key, "/v2/models/classifier/infer", bodies.v2_json, v2_json))
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


# ---------------------------------------------------------------- goals and report


def goals(rows: list[dict], ceiling_rps: float) -> list[dict]:
    """The goals, each with ``met`` (None when not measured) and the figures behind it."""

    def best(name_or_family: str) -> dict | None:
        candidates = [r for r in rows if name_or_family in (r["server"], r["family"])]
        return max(candidates, key=lambda r: r["requests_per_s"]) if candidates else None

    def at(name: str, concurrency: int) -> dict | None:
        return next((r for r in rows if r["server"] == name and r["concurrency"] == concurrency), None)

    out = []
    # like against like: the same body to both, an upload for BentoML, a V2 JSON tensor for MLServer
    for family, ours in (("bentoml", "this service: /predict"), ("mlserver", "this service: /v2 infer, JSON")):
        goal = f"{ours} >= {GOAL_RATIO:g}x the best configuration of {family}, at a lower p99"
        peer = best(family)
        mine = at(ours, peer["concurrency"]) if peer else None
        if peer is None or mine is None:
            out.append({"goal": goal, "met": None, "detail": "not measured"})
            continue
        ratio = mine["requests_per_s"] / peer["requests_per_s"]
        out.append({
            "goal": goal, "met": ratio >= GOAL_RATIO and mine["p99_ms"] < peer["p99_ms"], "ratio": ratio,
            "detail": f"at concurrency {peer['concurrency']}, where {peer['server']} peaks: "
                      f"{mine['requests_per_s']:.0f} against {peer['requests_per_s']:.0f} req/s = {ratio:.2f}x, "
                      f"p99 {mine['p99_ms']:.1f} against {peer['p99_ms']:.1f} ms",
        })
    for name, share in (("this service: /predict", GOAL_PREDICT), ("this service: /v2 infer, binary", GOAL_BINARY)):
        goal = f"{name} >= {share:.0%} of the onnxruntime ceiling"
        mine = best(name)
        if mine is None:
            out.append({"goal": goal, "met": None, "detail": "not measured"})
            continue
        fraction = mine["requests_per_s"] / ceiling_rps
        out.append({"goal": goal, "met": fraction >= share, "fraction": fraction,
                    "detail": f"{mine['requests_per_s']:.0f} req/s at concurrency {mine['concurrency']} against "
                              f"{ceiling_rps:.0f} images/s = {fraction:.1%}"})
    return out


def markdown(report: dict) -> str:
    ceiling_rps = report["ceiling"]["images_per_s"]
    lines = [
        f"# Serving against its peers ({report['machine']}{', smoke durations' if report['smoke'] else ''})",
        "",
        f"The same ONNX file served by this service, BentoML and MLServer (each peer in its own venv), all with "
        f"onnxruntime {report['versions']['onnxruntime']} on the same {report['cpus']} CPUs that wrk also runs "
        f"on. Upload servers get the same multipart body with a {report['bytes']['png']}-byte PNG; tensor servers "
        f"the same image as a UINT8 tensor ({report['bytes']['v2_json']} bytes of JSON, "
        f"{report['bytes']['v2_binary']} binary). {report['measure_s']:g} s measured per server and concurrency, "
        "in turns with the others; p50 of the median round, p99 of the worst; CPU: all the server's processes.",
        "",
        f"Ceiling: onnxruntime alone in-process, batch 1, {report['ceiling']['threads']} threads calling: "
        f"**{ceiling_rps:.0f} images/s**.",
        "",
        "| server | concurrency | requests/s | p50 ms | p99 ms | server CPU ms/request | failed | of ceiling |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in sorted(report["load"], key=lambda r: (report["order"].index(r["server"]), r["concurrency"])):
        lines.append(
            f"| {row['server']} | {row['concurrency']} | {row['requests_per_s']:.1f} | {row['p50_ms']:.1f} "
            f"| {row['p99_ms']:.1f} | {row['server_cpu_ms_per_request']:.2f} | {failed_cell(row)} "
            f"| {row['fraction_of_ceiling']:.1%} |")
    lines += ["", "Goals:", ""]
    for goal in report["goals"]:
        verdict = {True: "met", False: "not met", None: "not measured"}[goal["met"]]
        lines.append(f"- {goal['goal']}: **{verdict}** ({goal['detail']})")
    lines += ["", "Servers and tuning:", ""]
    for server in report["servers"]:
        lines.append(f"- {server['server']}: {server['config']}; start to ready {server['start_to_ready_s']:.1f} s")
    for family, text in TUNING.items():
        if family in report["versions"]:
            lines.append(f"- {family} tuning: {text}")
    lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.peers", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("bench-results"), help="directory for peers.json/.md")
    parser.add_argument("--smoke", action="store_true", help="tiny durations, concurrency 1 only")
    parser.add_argument("--servers", default=",".join(SERVER_FAMILIES),
                        help=f"comma-separated, of {', '.join(SERVER_FAMILIES)} (default all); the ceiling always runs")
    args = parser.parse_args(argv)
    families = [f.strip() for f in args.servers.split(",") if f.strip()]
    unknown = sorted(set(families) - set(SERVER_FAMILIES))
    if unknown or not families:
        parser.error(f"--servers: unknown {unknown}; choose from {', '.join(SERVER_FAMILIES)}")
    if shutil.which("wrk") is None:
        parser.error("needs wrk, the HTTP load generator (Debian: apt-get install wrk; or .ci/system-deps.sh)")
    counts = SMOKE if args.smoke else FULL

    versions = {"onnxruntime": ort.__version__}
    for family in families:
        if family in PEER_PACKAGES:
            versions[family] = peer_venv(family)[1]

    with tempfile.TemporaryDirectory(prefix="bench-peers-") as tmp:
        workdir = Path(tmp)
        _, onnx_path = make_models(workdir)
        model = load_session(onnx_path, ["CPUExecutionProvider"], intra_op_threads=1)  # as the service loads it
        bodies = make_bodies(workdir, model.info.input_shape)
        labels = list(model.info.labels)
        expected = labels[int(model.run(bodies.pixels).argmax())]
        print("ceiling: onnxruntime in-process", file=sys.stderr, flush=True)
        top = ceiling(model.session, bodies.pixels, counts)

        servers, targets, info = start_servers(families, workdir, onnx_path, bodies, versions)
        try:
            for target in targets:  # every server classifies the image as onnxruntime does, before any load
                server = servers[target.server]
                try:
                    got = answer(target, server.port, labels)
                except (OSError, RuntimeError) as e:
                    raise RuntimeError(f"{target.name} fails: {e}\n{server.log.read_text()[-3000:]}") from e
                if got != expected:
                    raise RuntimeError(f"{target.name} answers {got!r} for the image, onnxruntime {expected!r}")
            rows = load(servers, targets, counts, top["images_per_s"])
        finally:
            stop_all(servers)

    report = {
        "smoke": args.smoke,
        "machine": machine(),
        "cpus": CPUS,
        "versions": versions,
        "bytes": bodies.sizes,
        "measure_s": counts.rounds * counts.round_s,
        "concurrency": list(counts.concurrency),
        "ceiling": top,
        "servers": info,
        "order": [target.name for target in targets],
        "load": rows,
        "goals": goals(rows, top["images_per_s"]),
    }
    write_report(args.out, "peers", report, markdown(report), record=not args.smoke)
    return 0


if __name__ == "__main__":
    sys.exit(main())
