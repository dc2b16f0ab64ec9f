"""The production server: ``cifar10-serve --help``. Serves ``inference.app:create_app()`` on
$HOST:$PORT (default 0.0.0.0:8000) with granian, a WSGI server whose HTTP side is Rust. Port 0 is a free port the
system picks, reported in ``--port-file`` ($SERVER_PORT_FILE) and the log: how tests and benchmarks start it.

Why granian: a pure-Python HTTP server (gunicorn: parsing, keep-alive polling, thread hand-offs) cost about
as much CPU per request as the whole service's own work (Flask, decoding, onnxruntime, JSON); granian's HTTP
side is Rust and costs little. The serving benchmark (BENCHMARKS.md) measures the service on it.

One worker process by default (``--workers`` / SERVER_WORKERS for more): batching (the GPU image's default)
gathers concurrent requests into one onnxruntime call, which works best when they all reach one process, queue
and session. With several workers each loads, self-tests and hot-swaps the model on its own, and /metrics adds
up all of them (prometheus_client's multiprocess mode, in a folder the server makes: ``inference.metrics``).

gRPC (``--grpc-port`` / GRPC_PORT, off by default): each worker also serves the Open Inference Protocol over gRPC
(``inference.v2.grpc_service``) on that port, around its own model; gRPC binds with SO_REUSEPORT (its default on
Linux), so with several workers the kernel spreads the gRPC connections over them as the HTTP ones are.

Python threads: onnxruntime releases the GIL while it runs, so one thread per CPU keeps the cores busy; more
find no free core and only contend for the GIL, each hand-off of it costing CPU that no request uses. With
batching on, a batch can only grow as large as the number of requests in flight, so the default is then at least
the batch size.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import socket
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from granian import Granian
from granian.constants import Interfaces

from cifar10_pipeline.inference.config import METRICS_DIR_ENV, PORT_FILE_ENV, ServiceConfig, default_threads
from cifar10_pipeline.inference.providers import check_providers

DEFAULT_APP = "cifar10_pipeline.inference.app:create_app"
GRACEFUL_S = 10  # seconds in-flight requests get on shutdown (SIGTERM)
# one logging setup for granian's messages and the service's ("inference.*"): INFO and up, to stderr. Access
# lines stay off: they cost throughput, and /metrics counts requests by endpoint and status.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "plain", "stream": "ext://sys.stderr"}},
    "root": {"level": "INFO", "handlers": ["stderr"]},
    "loggers": {
        "_granian": {"level": "INFO", "handlers": [], "propagate": True},
        "granian.access": {"level": "WARNING", "handlers": [], "propagate": True},
    },
}


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not an integer") from None


def build_parser(config: ServiceConfig) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m cifar10_pipeline.inference.server",
        description="Serve the model (INFERENCE_* environment variables, see inference/config.py) over HTTP, and over "
                    "gRPC too with --grpc-port.",
    )
    parser.add_argument("--host", default=os.environ.get("HOST", "0.0.0.0"), help="address to bind (env HOST)")
    parser.add_argument("--port", type=int, default=_env_int("PORT", 8000),
                        help="port (env PORT, default 8000); 0: a free port the system picks, see --port-file")
    parser.add_argument("--port-file", type=Path, default=os.environ.get(PORT_FILE_ENV) or None,
                        help=f"write the port, once it is this server's, to this file (env {PORT_FILE_ENV}): how a "
                             "launcher that asked for port 0 learns which one it got")
    parser.add_argument("--grpc-port", type=int, default=config.grpc_port,
                        help="also serve the Open Inference Protocol over gRPC on this port (env GRPC_PORT; "
                             "default 0: off)")
    threads = _env_int("SERVER_THREADS", default_threads(config))
    parser.add_argument("--threads", type=int, default=threads,
                        help=f"Python threads running requests (env SERVER_THREADS; default here {threads}: the "
                             "CPUs, or the batch size when batching is on)")
    parser.add_argument("--workers", type=int, default=_env_int("SERVER_WORKERS", 1),
                        help="worker processes, each with its own copy of the model (env SERVER_WORKERS, default 1)")
    parser.add_argument("--app", default=DEFAULT_APP, help=f"WSGI app factory to serve (default {DEFAULT_APP})")
    return parser


@contextlib.contextmanager
def shared_metrics() -> Iterator[Path]:
    """Point the workers' metrics at one folder ($PROMETHEUS_MULTIPROC_DIR, or a temporary one removed at the
    end), emptied of an earlier server's files; the workers inherit the variable."""
    given = os.environ.get(METRICS_DIR_ENV)
    with contextlib.ExitStack() as stack:
        folder = Path(given or stack.enter_context(tempfile.TemporaryDirectory(prefix="inference-metrics-")))
        folder.mkdir(parents=True, exist_ok=True)
        for stale in folder.glob("*.db"):
            stale.unlink()
        os.environ[METRICS_DIR_ENV] = str(folder)
        yield folder


def main(argv: list[str] | None = None) -> int:
    try:
        config = ServiceConfig.from_env()  # the worker reads it again; a bad setting fails here, once, clearly
        # a provider this build lacks (CUDA in the CPU image) would make every worker fail to start, a crash loop
        check_providers(config.providers)
        parser = build_parser(config)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    args = parser.parse_args(argv)
    if not 0 <= args.port <= 65535:
        parser.error(f"--port must be in 0..65535 (0: any free port), got {args.port}")
    if not 0 <= args.grpc_port <= 65535 or (args.grpc_port and args.grpc_port == args.port):
        parser.error(f"--grpc-port must be 0 (off) or in 1..65535 and not --port, got {args.grpc_port}")
    if args.threads < 1:
        parser.error(f"--threads must be >= 1, got {args.threads}")
    if args.workers < 1:
        parser.error(f"--workers must be >= 1, got {args.workers}")
    try:
        for flag, port in (("--port", args.port), ("--grpc-port", args.grpc_port)):
            if port:
                check_port_free(args.host, port, flag)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    # the workers read these: their gRPC side (when on) binds and sizes itself as the HTTP side
    os.environ.update(HOST=args.host, SERVER_THREADS=str(args.threads), GRPC_PORT=str(args.grpc_port))
    with contextlib.ExitStack() as stack:
        if args.workers > 1:
            stack.enter_context(shared_metrics())
        if args.port == 0:
            args.port = stack.enter_context(reserved_port(args.host))
        if args.port_file is not None:  # one line: a reader takes the number once its line has ended
            args.port_file.write_text(f"{args.port}\n")
        serve(args)
    return 0


def check_port_free(host: str, port: int, flag: str) -> None:
    """Bind ``host``:``port`` once and let it go, before any worker starts; a ValueError naming ``flag`` if another
    process listens there, the host is not an address of this machine, or the port needs root.

    Without it, a taken HTTP port ends in granian's traceback and a taken gRPC port in a crash loop of workers. The
    probe sets SO_REUSEADDR as the servers do (a port left in TIME_WAIT by a server just stopped is free) but not
    SO_REUSEPORT: the workers' sockets share the port with each other, and must not share it with another server
    (the kernel would split the connections between the two)."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                             flags=socket.AI_PASSIVE)[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(address)
    except OSError as e:
        hint = {errno.EADDRINUSE: "stop what listens there or choose another port",
                errno.EACCES: "ports below 1024 need root (or CAP_NET_BIND_SERVICE)"}.get(
            e.errno, "--host must name an address of this machine")
        raise ValueError(f"{flag} {port}: cannot listen on {host}:{port} ({e.strerror}); {hint}") from None


@contextlib.contextmanager
def reserved_port(host: str) -> Iterator[int]:
    """A free port on ``host`` that the system picks, held for the block by a socket bound to it but not listening.

    Granian binds its listening sockets (one per worker) with SO_REUSEPORT, so they join this one, which sets it
    too; every other bind to the port fails, as the port is in use from the moment it is known. Held to the end,
    it also keeps the port while granian replaces a worker that died. (Granian itself, given port 0, would have
    each worker bind a port of its own and report none of them.)"""
    family = socket.getaddrinfo(host, 0, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0][0]
    with socket.socket(family, socket.SOCK_STREAM) as holder:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        holder.bind((host, 0))
        yield holder.getsockname()[1]


def serve(args: argparse.Namespace) -> None:
    Granian(
        args.app,
        address=args.host,
        port=args.port,
        interface=Interfaces.WSGI,
        factory=True,
        workers=args.workers,
        blocking_threads=args.threads,
        websockets=False,
        respawn_failed_workers=True,  # a worker that dies (a crash in native code) is replaced
        workers_kill_timeout=GRACEFUL_S,
        log_dictconfig=LOGGING,
    ).serve()


if __name__ == "__main__":
    sys.exit(main())
