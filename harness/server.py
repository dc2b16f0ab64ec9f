"""A server process on 127.0.0.1 and a free port, ready once its readiness URL answers 200.

By default the server is the service as ``cifar10-serve`` runs it (``python -m cifar10_pipeline.inference.server``,
granian) with this environment plus the given settings (``INFERENCE_*``, ``SERVER_*``); any other command that
listens on the port it is given serves too (the peers of the serving benchmarks).
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

from harness import REPO

SERVICE = (sys.executable, "-m", "cifar10_pipeline.inference.server")  # what cifar10-serve runs, in this environment
START_TIMEOUT_S = 120.0  # a server not ready by then has failed
POLL_S = 0.01  # between readiness checks: the start-to-ready time is measured with it
STOP_TIMEOUT_S = 30.0  # after SIGTERM, then SIGKILL
HTTP_TIMEOUT_S = 30.0  # one call to the server; longer means it hangs


class ServerError(RuntimeError):
    """A server that exited, or was not ready in time, while it was waited for (its log in the message)."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (the system's pick)."""
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


def _read(log: Path | None) -> str:
    return log.read_text(errors="replace") if log is not None and log.exists() else ""


class Server:
    """``command`` (default: the service) with ``args``, started in ``cwd`` with this environment, ``HOST=127.0.0.1``,
    ``PORT`` and ``settings``, its output in ``log``; ready (``ready_path`` answers 200) when the constructor
    returns, a ServerError otherwise. ``port``: the one the command listens on when it does not read ``PORT``.
    A context manager: stopped on exit."""

    def __init__(self, settings: Mapping[str, str], log: Path, *args: str, command: Sequence[str] = SERVICE,
                 port: int | None = None, ready_path: str = "/readyz", cwd: Path = REPO):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        env = {**os.environ, "HOST": "127.0.0.1", "PORT": str(self.port), **settings}
        started = time.perf_counter()
        with log.open("wb") as out:
            self.process = subprocess.Popen([*command, *args], cwd=cwd, env=env, stdout=out, stderr=out)
        try:
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
        found, todo = [], [self.process.pid]
        while todo:
            pid = todo.pop()
            found.append(pid)
            for children in Path(f"/proc/{pid}/task").glob("*/children"):  # any of its threads may have forked
                try:
                    todo += map(int, children.read_text().split())
                except OSError:  # the process just ended
                    pass
        return found

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
