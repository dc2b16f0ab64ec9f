"""A server process on 127.0.0.1 and a free port, ready once its readiness URL answers 200.

By default the server is the service as ``cifar10-serve`` runs it (``python -m cifar10_pipeline.inference.server``,
granian) with this environment plus the given settings (``INFERENCE_*``, ``SERVER_*``). It is started with PORT=0:
the service binds a port the system picks and writes it to $SERVER_PORT_FILE, which is read here, so no two
servers ever race for a port. Any other command that does the same serves too, and one that can only listen on a
port it is given (the peers of the serving benchmarks) gets one from ``free_port``.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from urllib.parse import urlsplit

from cifar10_pipeline.inference.config import PORT_FILE_ENV
from harness import REPO

SERVICE = (sys.executable, "-m", "cifar10_pipeline.inference.server")  # what cifar10-serve runs, in this environment
# the service on onnxruntime-gpu, as the GPU image has it (make install-serve-gpu): what the GPU checks serve with
SERVE_GPU_PYTHON = REPO / (os.environ.get("SERVE_GPU_VENV") or ".venv-serve-gpu") / "bin" / "python"
START_TIMEOUT_S = 120.0  # a server not ready by then has failed
POLL_S = 0.01  # between readiness checks: the start-to-ready time is measured with it
STOP_TIMEOUT_S = 30.0  # after SIGTERM, then SIGKILL
HTTP_TIMEOUT_S = 30.0  # one call to the server; longer means it hangs


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants alive now (from /proc), parents before their children."""
    found, todo = [], [pid]
    while todo:
        pid = todo.pop()
        found.append(pid)
        for children in Path(f"/proc/{pid}/task").glob("*/children"):  # any of its threads may have forked
            try:
                todo += map(int, children.read_text().split())
            except OSError:  # the process just ended
                pass
    return found


class ServerError(RuntimeError):
    """A server that exited, or was not ready in time, while it was waited for (its log in the message)."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (the system's pick), for a command that cannot bind port 0
    and report it (a benchmark's peer servers, PostgreSQL, HAProxy): another process may still take the port before
    the command binds it. The service never needs it (``Server`` starts it on port 0)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(port: int, method: str, path: str, body: bytes | None = None,
         headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    """(status, body) of one request to 127.0.0.1:``port`` on a fresh connection."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=HTTP_TIMEOUT_S)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def _answers_200(host: str, port: int, path: str) -> bool:
    conn = http.client.HTTPConnection(host, port, timeout=1)
    try:
        conn.request("GET", path)
        return conn.getresponse().status == 200
    except (OSError, http.client.HTTPException):  # not listening yet, or dropped the connection while starting
        return False
    finally:
        conn.close()


def wait_ready(base: str, process: subprocess.Popen | None = None, log: Path | None = None, *,
               path: str = "/readyz", timeout: float = START_TIMEOUT_S) -> None:
    """Return once ``base`` + ``path`` answers 200; a ServerError when ``process`` (the server, if given) exits
    first or ``timeout`` seconds pass. ``log``: the server's output, quoted in the error."""
    url = urlsplit(base)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise ServerError(f"the server exited with {process.returncode}:\n{_read(log)}")
        if _answers_200(url.hostname or "127.0.0.1", url.port or 80, path):
            return
        time.sleep(POLL_S)
    raise ServerError(f"{base} not ready after {timeout:g} s:\n{_read(log)}")


def wait_port(port_file: Path, process: subprocess.Popen, log: Path | None = None, *,
              timeout: float = START_TIMEOUT_S) -> int:
    """The port a server started with PORT=0 writes to ``port_file`` (its $SERVER_PORT_FILE), as one line, once it
    holds it; a ServerError when ``process`` exits first or ``timeout`` seconds pass, or the line is not a port.
    ``log``: the server's output, quoted."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServerError(f"the server exited with {process.returncode}:\n{_read(log)}")
        try:
            text = port_file.read_text()
        except FileNotFoundError:
            text = ""
        if not text.endswith("\n"):  # not yet written, or caught mid-write: the line ends the number
            time.sleep(POLL_S)
            continue
        if not (text.strip().isdigit() and 1 <= int(text) <= 65535):
            raise ServerError(f"{port_file} holds {text.strip()!r:.40}, not the port the server listens on")
        return int(text)
    raise ServerError(f"no port in {port_file} after {timeout:g} s:\n{_read(log)}")


def _read(log: Path | None) -> str:
    return log.read_text(errors="replace") if log is not None and log.exists() else ""


class Server:
    """``command`` (default: the service) with ``args``, started in ``cwd`` with this environment, ``HOST=127.0.0.1``,
    ``PORT=0``, ``SERVER_PORT_FILE`` (``log`` + ``.port``, where it writes the port it got) and ``settings``, its
    output in ``log``; ready (``ready_path`` answers 200) when the constructor returns, a ServerError otherwise.
    ``port``: for a command that cannot bind port 0 and report it, the port it listens on (given as ``PORT`` too).
    A context manager: stopped on exit."""

    def __init__(self, settings: Mapping[str, str], log: Path, *args: str, command: Sequence[str] = SERVICE,
                 port: int | None = None, ready_path: str = "/readyz", cwd: Path = REPO):
        self.log = log
        port_file = log.with_name(f"{log.name}.port")
        port_file.unlink(missing_ok=True)  # an earlier server's
        env = {**os.environ, "HOST": "127.0.0.1", "PORT": str(port or 0), PORT_FILE_ENV: str(port_file), **settings}
        started = time.perf_counter()
        with log.open("wb") as out:
            self.process = subprocess.Popen([*command, *args], cwd=cwd, env=env, stdout=out, stderr=out)
        try:
            self.port = port or wait_port(port_file, self.process, log)
            self.url = f"http://127.0.0.1:{self.port}"
            wait_ready(self.url, self.process, log, path=ready_path)
        except BaseException:
            self.stop()
            raise
        self.start_to_ready_s = time.perf_counter() - started  # seconds from the start to the first 200

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def pids(self) -> list[int]:
        """The server's process and all its descendants (worker processes, their helpers), alive now."""
        return process_tree(self.process.pid)

    def cpu_seconds(self) -> float:
        """CPU time (user + system) of the server's process and all its descendants: what the machine paid for
        the requests."""
        total = 0
        for pid in self.pids():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:  # ended since it was listed
                continue
            total += int(fields[11]) + int(fields[12])
        return total / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        """SIGTERM, SIGKILL after STOP_TIMEOUT_S; descendants that outlive the server are killed by their ids."""
        descendants = self.pids()[1:] if self.process.poll() is None else []
        self.process.terminate()
        try:
            self.process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=STOP_TIMEOUT_S)
        for pid in descendants:
            with contextlib.suppress(OSError):  # gone already, as it should be
                os.kill(pid, signal.SIGKILL)


@contextlib.contextmanager
def served(settings: Mapping[str, str], log: Path, *args: str) -> Iterator[str]:
    """The service (``python -m cifar10_pipeline.inference.server ARGS``) with ``settings`` added to the environment,
    its output in ``log``: yields its base URL once /readyz answers 200, stops it on exit."""
    with Server(settings, log, *args) as server:
        yield server.url
