"""HAProxy in front of the replicas: its configuration, its process, its stats socket and its log.

The Debian package's binary runs in the foreground (``-db``), logging to its stdout (a file): one line per
request in LOG_FORMAT and one per server state change (``Server replicas/replica-2 is DOWN ...``), each
behind an ISO 8601 timestamp.
"""

from __future__ import annotations

import csv
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

BACKEND = "replicas"
START_TIMEOUT_S = 10.0  # HAProxy binds and reads its socket in milliseconds; more means something is wrong
STOP_TIMEOUT_S = 5.0  # SIGTERM stops it at once; SIGKILL after this
# HAProxy's buffer per direction of a request (bytes): a request whose headers and body fit in it is held whole
# (option http-buffer-request) and can be replayed on another replica. 1 MiB takes a CIFAR-size PNG (3 kB) or a
# 1080p JPEG (about 300 kB); HAProxy gives every active request two such buffers, so the service's upload limit
# (16 MiB) would cost 32 MiB per request. Larger uploads pass through, but are never replayed.
BUFFER_BYTES = 1024 * 1024
# one request: the replica that answered, status, retries, termination state and when it was accepted (epoch s)
LOG_FORMAT = "request server=%s status=%ST retries=%rc term=%ts accepted=%Ts.%ms"
# (%rc: the retries, behind a "+" when the request was redispatched: load-balanced again, away from the server that
# failed it, rather than retried on that one)
_REQUEST = re.compile(r"request server=(\S+) status=(-?\d+) retries=(\+?)(\d+) term=(\S+) accepted=(\d+)\.(\d+)")
# (HAProxy also prints each change to stderr as "[WARNING] ... Server ...", without a timestamp: not matched)
_TRANSITION = re.compile(rf"^(\d{{4}}-\S+) Server {BACKEND}/(\S+) is (UP|DOWN)")


@dataclass(frozen=True)
class Checks:
    """The health check of every replica: GET /readyz every ``inter_ms``; ``fall`` failures in a row mark it
    DOWN (no new requests), ``rise`` successes UP again; one check gives up after ``timeout_ms``."""

    inter_ms: int = 1000
    fall: int = 2
    rise: int = 2
    timeout_ms: int = 1000

    def detection_window_s(self) -> float:
        """The longest a dead replica can still be sent requests: ``fall`` checks ``inter_ms`` apart after the
        last one that passed, the last of them waiting up to ``timeout_ms`` (a refused connection fails at once)."""
        return (self.fall * self.inter_ms + self.timeout_ms) / 1000


def render_config(port: int, stats_port: int, stats_socket: Path, backends: list[tuple[str, int]],
                  checks: Checks) -> str:
    """The configuration: one frontend on 127.0.0.1:``port``, the backends ``(name, loopback port)``, and the
    stats page (``/``) and Prometheus metrics (``/metrics``) on 127.0.0.1:``stats_port``."""
    servers = "\n".join(f"    server {name} 127.0.0.1:{backend_port}" for name, backend_port in backends)
    return f"""\
global
    log stdout format iso local0
    stats socket {stats_socket} mode 600 level admin
    stats timeout 10s
    tune.bufsize {BUFFER_BYTES}

defaults
    mode http
    log global
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    timeout check {checks.timeout_ms}ms
    # a request that fails to connect, or whose replica closes without answering or answers half (killed
    # mid-request), or that a replica answers 503 (no model, or inference timed out), is sent again to another
    # replica: classifying an image is a pure function of the body, so replaying it is safe. Replaying needs the
    # whole request in HAProxy's buffer, hence http-buffer-request (requests up to BUFFER_BYTES)
    option http-buffer-request
    retries 3
    option redispatch 1
    retry-on conn-failure empty-response junk-response 503

frontend serve
    bind 127.0.0.1:{port}
    log-format "{LOG_FORMAT}"
    default_backend {BACKEND}

backend {BACKEND}
    balance roundrobin
    option httpchk
    http-check send meth GET uri /readyz
    http-check expect status 200
    default-server check inter {checks.inter_ms}ms fall {checks.fall} rise {checks.rise}
{servers}

frontend stats
    bind 127.0.0.1:{stats_port}
    no log
    http-request use-service prometheus-exporter if {{ path /metrics }}
    stats enable
    stats uri /
    stats refresh 2s
"""


def binary() -> str:
    path = shutil.which("haproxy") or next((p for p in ("/usr/sbin/haproxy",) if Path(p).exists()), None)
    if path is None:
        raise FileNotFoundError("haproxy is not installed (Debian: apt-get install haproxy; or make system-deps)")
    return path


def start(config: Path, log: Path) -> subprocess.Popen:
    """Check ``config``, then run HAProxy in the foreground with its log going to ``log``; return once its stats
    socket answers."""
    checked = subprocess.run([binary(), "-c", "-f", str(config)], check=False, capture_output=True,
                             text=True)
    if checked.returncode != 0:
        raise RuntimeError(f"haproxy refused {config}:\n{checked.stderr or checked.stdout}")
    socket_path = Path(re.search(r"stats socket (\S+)", config.read_text())[1])
    with log.open("ab") as out:
        # a session of its own: a terminal's Ctrl-C reaches only the caller, whose clean-up stops it, then the replicas
        process = subprocess.Popen([binary(), "-db", "-f", str(config)], stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"haproxy exited with {process.returncode}:\n{log.read_text()}")
        try:
            command(socket_path, "show info")
            return process
        except OSError:
            time.sleep(0.05)
    stop(process.pid, config)
    raise RuntimeError(f"haproxy's stats socket {socket_path} did not answer in {START_TIMEOUT_S} s")


def running(pid: int, config: Path) -> bool:
    """Whether ``pid`` is an HAProxy running ``config`` (not one that has exited, nor another process that
    got the pid since)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")  # empty once exited
    except OSError:
        return False
    return cmdline[0].endswith(b"haproxy") and str(config).encode() in cmdline


def stop(pid: int, config: Path) -> bool:
    """Stop the HAProxy of ``pid`` that runs ``config`` and wait until it has: SIGTERM (it closes its connections
    at once), SIGKILL if it is still there after STOP_TIMEOUT_S. False when it was not running."""
    if not running(pid, config):
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while running(pid, config):
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            deadline = float("inf")
        time.sleep(0.02)
    return True


def command(socket_path: Path, line: str) -> str:
    """One command on the stats socket (``show stat``, ``show servers state``, ...): its whole answer."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(5)
        s.connect(str(socket_path))
        s.sendall(line.encode() + b"\n")
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks).decode()


def server_stats(socket_path: Path) -> dict[str, dict[str, str]]:
    """``show stat`` for the backend's servers, by server name: status (UP, DOWN, ...), chkdown (UP to DOWN
    transitions), stot (requests sent), hrsp_5xx, check_status and the rest of HAProxy's CSV columns."""
    text = command(socket_path, "show stat").lstrip("# ")
    return {row["svname"]: row for row in csv.DictReader(text.splitlines())
            if row["pxname"] == BACKEND and row["svname"] not in ("FRONTEND", "BACKEND")}


@dataclass(frozen=True)
class Request:
    """One request as HAProxy logged it."""

    server: str  # the replica that answered (or "<NOSRV>")
    status: int  # -1: no response at all
    retries: int  # connection attempts or replays beyond the first
    termination: str  # two characters: "--" when the session ended normally
    accepted: float  # epoch seconds
    redispatched: bool = False  # "+" before the retries: a retry went to another server (option redispatch)


@dataclass(frozen=True)
class Transition:
    """A server marked UP or DOWN by the health check."""

    server: str
    state: str  # "UP" or "DOWN"
    at: float  # epoch seconds


def read_log(log: Path) -> tuple[list[Request], list[Transition]]:
    """The requests and the state changes in HAProxy's log, in order."""
    requests, transitions = [], []
    for line in log.read_text(errors="replace").splitlines():
        if m := _REQUEST.search(line):
            requests.append(Request(m[1], int(m[2]), int(m[4]), m[5], int(m[6]) + int(m[7]) / 1000, m[3] == "+"))
        elif m := _TRANSITION.search(line):
            transitions.append(Transition(m[2], m[3], datetime.fromisoformat(m[1]).timestamp()))
    return requests, transitions


def down_intervals(transitions: list[Transition], server: str, until: float) -> list[tuple[float, float]]:
    """When ``server`` was DOWN, as (from, to) epoch seconds; one still DOWN lasts ``until``."""
    intervals, since = [], None
    for t in transitions:
        if t.server != server:
            continue
        if t.state == "DOWN" and since is None:
            since = t.at
        elif t.state == "UP" and since is not None:
            intervals.append((since, t.at))
            since = None
    return intervals + ([(since, until)] if since is not None else [])
