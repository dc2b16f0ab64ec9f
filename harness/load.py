"""HTTP load from wrk, a C load generator (so the client takes little of the CPU the servers share with it): one
body POSTed back to back over keep-alive connections, and the totals and percentiles of each run.

Needs wrk on the PATH (Debian: apt-get install wrk; ``.ci/system-deps.sh``).
"""

from __future__ import annotations

import atexit
import functools
import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from harness.server import Server

# wrk's script: POST the file named by $WRK_BODY as image/png, or with the "Name: value" lines of $WRK_HEADERS as
# headers, and print one JSON line of totals and percentiles at the end
WRK_SCRIPT = """
local f = assert(io.open(os.getenv("WRK_BODY"), "rb"))
wrk.method, wrk.body = "POST", f:read("*a")
f:close()
wrk.headers["Content-Type"] = "image/png"
for name, value in (os.getenv("WRK_HEADERS") or ""):gmatch("([^:\\n]+): ([^\\n]*)") do
  wrk.headers[name] = value
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('{"requests": %d, "seconds": %f, "failed": %d, "p50_ms": %f, "p99_ms": %f}\\n',
    summary.requests, summary.duration / 1e6, e.status + e.connect + e.read + e.write + e.timeout,
    latency:percentile(50) / 1e3, latency:percentile(99) / 1e3))
end
"""


class LoadError(RuntimeError):
    """wrk failed, or printed no totals."""


@functools.cache
def _script() -> Path:
    """WRK_SCRIPT as a file (wrk reads its script from one), written once per process, removed at exit."""
    folder = Path(tempfile.mkdtemp(prefix="wrk-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    path = folder / "post.lua"
    path.write_text(WRK_SCRIPT)
    return path


def start_wrk(port: int, body: Path, concurrency: int, seconds: int, path: str = "/predict",
              headers: dict[str, str] | None = None) -> subprocess.Popen:
    """Start wrk: ``concurrency`` connections to 127.0.0.1:``port`` POST the file ``body`` to ``path`` back to back
    for ``seconds`` (as image/png, or with ``headers`` instead). SIGINT ends it early; either way ``wrk_result``
    reads its totals."""
    cmd = ["wrk", f"--threads={min(2, concurrency)}", f"--connections={concurrency}", f"--duration={seconds}s",
           "--timeout=30s", f"--script={_script()}", f"http://127.0.0.1:{port}{path}"]
    lines = "".join(f"{name}: {value}\n" for name, value in (headers or {}).items())
    return subprocess.Popen(cmd, env={**os.environ, "WRK_BODY": str(body), "WRK_HEADERS": lines},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wrk_result(process: subprocess.Popen, timeout: float) -> dict:
    """wrk's totals once ``process`` (from ``start_wrk``) ends, within ``timeout`` seconds: requests, seconds,
    failed (socket errors, timeouts and non-2xx answers), p50_ms, p99_ms."""
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise
    if process.returncode != 0:
        raise LoadError(f"wrk failed ({process.returncode}): {stderr or stdout}")
    lines = stdout.strip().splitlines()
    if not lines:
        raise LoadError(f"wrk printed no totals: {stderr}")
    return json.loads(lines[-1])


def wrk(port: int, body: Path, concurrency: int, seconds: int, path: str = "/predict",
        headers: dict[str, str] | None = None) -> dict:
    """``start_wrk`` and its result: ``seconds`` of load."""
    return wrk_result(start_wrk(port, body, concurrency, seconds, path, headers), seconds + 60)


@dataclass
class Tally:
    """What one server's measured rounds added up to."""

    requests: int = 0
    failed: int = 0
    wall_s: float = 0.0
    cpu_s: float = 0.0
    p50_ms: list[float] = field(default_factory=list)  # one per round
    p99_ms: list[float] = field(default_factory=list)

    def add(self, result: dict, cpu_s: float) -> None:
        """One round: wrk's ``result`` and the server CPU seconds it took."""
        self.cpu_s += cpu_s
        self.requests += result["requests"] - result["failed"]
        self.failed += result["failed"]
        self.wall_s += result["seconds"]
        self.p50_ms.append(result["p50_ms"])
        self.p99_ms.append(result["p99_ms"])

    def summary(self) -> dict:
        return {
            "requests": self.requests,
            "failed": self.failed,
            "requests_per_s": self.requests / self.wall_s,
            "p50_ms": float(np.median(self.p50_ms)),  # the median round's
            "p99_ms": max(self.p99_ms),  # the worst round's: percentiles of separate runs do not average
            "server_cpu_ms_per_request": 1000 * self.cpu_s / max(self.requests, 1),
        }


def load_round(server: Server, tally: Tally, body: Path, concurrency: int, seconds: int, path: str = "/predict",
               headers: dict[str, str] | None = None) -> None:
    """One measured round of wrk load on ``server``, added to ``tally`` with the server CPU it took."""
    cpu_before = server.cpu_seconds()
    result = wrk(server.port, body, concurrency, seconds, path, headers)
    tally.add(result, server.cpu_seconds() - cpu_before)
