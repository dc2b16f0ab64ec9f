"""HTTP load from wrk, a C load generator (so the client takes little of the CPU the servers share with it): one
body POSTed back to back over keep-alive connections, and the totals and percentiles of each run.

Two kinds of run. ``wrk``: a fixed duration, for throughput and latency (the serving benchmarks); wrk stops
mid-request when its time is up and counts only the answers it got. ``Counted``: a run that accounts for every
request it sends (the rollout, the soak, the swaps): wrk's Lua hooks count each request written and each answer
read, and tally the answers' bodies; ``stop()`` lets the requests in flight finish (none is sent after it, each
gets up to ``timeout_s``), so every request sent ends answered, answered late (a timeout) or unanswered.

Needs wrk on the PATH (Debian: apt-get install wrk; ``.ci/system-deps.sh``).
"""

from __future__ import annotations

import atexit
import functools
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from harness.server import Server

THREADS = 2  # wrk's threads (at most one per connection): the machines here have 2 cores
DEFAULT_TIMEOUT_S = 30  # wrk's per-request timeout for ``wrk`` runs: an answer later than this counts as failed
MAX_BODIES = 100  # distinct answer bodies a Counted run keeps per wrk thread; the rest are counted as "other"
# wrk's script: POST the file named by $WRK_BODY as image/png, or with the "Name: value" lines of $WRK_HEADERS as
# headers, and print one JSON line of totals and percentiles at the end. With $WRK_CONTROL (a folder) it also
# counts every request it writes and every answer it reads, tallies the answers by status and body, and stops
# sending once the file <control>/stop exists: each thread then ends when it has every answer it waits for (it
# marks that with <control>/drained-<thread>). done() writes the tallied bodies to <control>/bodies, each entry a
# line "count status length" and the body's bytes.
WRK_SCRIPT = """
local f = assert(io.open(os.getenv("WRK_BODY"), "rb"))
wrk.method, wrk.body = "POST", f:read("*a")
f:close()
wrk.headers["Content-Type"] = "image/png"
for name, value in (os.getenv("WRK_HEADERS") or ""):gmatch("([^:\\n]+): ([^\\n]*)") do
  wrk.headers[name] = value
end
local control = os.getenv("WRK_CONTROL")
local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("id", #threads)
end

if control then
  local req, started
  sent, answered, bodies, distinct, open_at_stop = 0, 0, {}, 0, -1

  local function stopping()
    local stop = io.open(control .. "/stop")
    if stop then stop:close() end
    return stop ~= nil
  end

  local function drain()
    if open_at_stop < 0 then open_at_stop = sent - answered end
    if sent == answered then
      assert(io.open(control .. "/drained-" .. id, "w")):close()
      wrk.thread:stop()
    end
  end

  function init(args)
    req = wrk.format()
  end

  function request()
    -- wrk calls it once before the first thread starts, to check the request (not sent): not counted. Every
    -- request sent follows a delay() call (or a reconnection, after one)
    if started then sent = sent + 1 end
    return req
  end

  function delay()
    started = true
    if stopping() then
      drain()
      return 3600000  -- send nothing more: the thread ends once its open requests are answered
    end
    return 0
  end

  function response(status, headers, body)
    answered = answered + 1
    local key = status .. " " .. body
    if bodies[key] == nil and distinct >= MAX_BODIES then key = status .. " " end
    if bodies[key] == nil then distinct = distinct + 1 end
    bodies[key] = (bodies[key] or 0) + 1
    if stopping() then drain() end
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  local counted = ""
  if control then
    local s, a, open, merged = 0, 0, 0, {}
    for _, thread in ipairs(threads) do
      local t_sent, t_answered, t_open = thread:get("sent"), thread:get("answered"), thread:get("open_at_stop")
      s, a = s + t_sent, a + t_answered
      open = open + (t_open >= 0 and t_open or t_sent - t_answered)
      for key, count in pairs(thread:get("bodies")) do merged[key] = (merged[key] or 0) + count end
    end
    local out = assert(io.open(control .. "/bodies", "wb"))
    for key, count in pairs(merged) do
      local status, body = key:match("^(%d+) (.*)$")
      out:write(string.format("%d %s %d\\n", count, status, #body), body)
    end
    out:close()
    counted = string.format(', "sent": %d, "answered": %d, "open_at_stop": %d', s, a, open)
  end
  io.write(string.format('{"requests": %d, "seconds": %f, "failed": %d, "p50_ms": %f, "p99_ms": %f, '
    .. '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}%s}\\n',
    summary.requests, summary.duration / 1e6, e.status + e.connect + e.read + e.write + e.timeout,
    latency:percentile(50) / 1e3, latency:percentile(99) / 1e3,
    e.connect, e.read, e.write, e.status, e.timeout, counted))
end
""".replace("MAX_BODIES", str(MAX_BODIES))


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


def _start(port: int, body: Path, concurrency: int, seconds: float, path: str, headers: dict[str, str] | None,
           timeout_s: float, control: Path | None = None) -> subprocess.Popen:
    """Start wrk: ``concurrency`` connections to 127.0.0.1:``port`` POST the file ``body`` to ``path`` back to back
    for at most ``seconds`` (as image/png, or with ``headers`` instead); an answer later than ``timeout_s`` counts
    as a timeout. ``control``: the folder of a Counted run."""
    cmd = ["wrk", f"--threads={min(THREADS, concurrency)}", f"--connections={concurrency}",
           f"--duration={max(1, round(seconds))}s", f"--timeout={max(1, round(timeout_s))}s",
           f"--script={_script()}", f"http://127.0.0.1:{port}{path}"]
    lines = "".join(f"{name}: {value}\n" for name, value in (headers or {}).items())
    env = {**os.environ, "WRK_BODY": str(body), "WRK_HEADERS": lines}
    if control is not None:
        env["WRK_CONTROL"] = str(control)
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _result(process: subprocess.Popen, timeout: float) -> dict:
    """wrk's totals once ``process`` ends, within ``timeout`` seconds: requests (answers read), seconds, failed
    (socket errors, timeouts and answers >= 400), errors (those by kind), p50_ms, p99_ms; a Counted run's also
    sent and open_at_stop."""
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
    """``seconds`` of load (``_start``), and its totals (``_result``)."""
    return _result(_start(port, body, concurrency, seconds, path, headers, DEFAULT_TIMEOUT_S), seconds + 60)


def read_bodies(path: Path) -> list[dict]:
    """The answer bodies a Counted run tallied (WRK_SCRIPT's ``bodies`` file): [{status, body, count}], the most
    frequent first; the body "" for answers past the MAX_BODIES distinct ones of their thread."""
    data, tallies, at = path.read_bytes(), [], 0
    while at < len(data):
        end = data.index(b"\n", at)
        count, status, length = map(int, data[at:end].split())
        body = data[end + 1:end + 1 + length]
        tallies.append({"status": status, "body": body.decode(errors="replace"), "count": count})
        at = end + 1 + length
    return sorted(tallies, key=lambda t: -t["count"])


def settle(result: dict, bodies: list[dict], drained: bool, timeout_s: float) -> dict:
    """A Counted run's figures from wrk's totals (``_result``) and its tallied ``bodies``: every request sent is
    answered (``requests``: in time, or late: a timeout) or ``unanswered`` (its connection closed under it, or
    still open ``timeout_s`` after the stop). ``failed``: unanswered requests, answers >= 400, timeouts and
    connections refused, each request counted once (a request lost to a socket error is one of the unanswered)."""
    errors = result["errors"]
    unanswered = result["sent"] - result["answered"]
    return {**result, "unanswered": unanswered, "drained": drained, "timeout_s": timeout_s,
            "failed": min(result["sent"], unanswered + errors["status"] + errors["timeout"]) + errors["connect"],
            "bodies": bodies}


def failures(result: dict) -> str:
    """A Counted run's failures in words: of every request sent, and of what kind."""
    e = result["errors"]
    return (f"{result['failed']} of {result['sent']:,} sent ({result['unanswered']} unanswered, {e['status']} "
            f"answered >= 400, {e['timeout']} later than {result['timeout_s']:g} s, {e['connect']} connections "
            "refused)")


class Counted:
    """wrk posting ``body`` to 127.0.0.1:``port`` + ``path`` over ``concurrency`` connections from now until
    ``stop()``, counting every request (see WRK_SCRIPT). ``max_s``: wrk's own limit, a safety net only: a run
    that reaches it ends with its open requests unanswered. ``timeout_s``: the longest an answer may take, and
    the longest ``stop()`` waits for the requests still open."""

    def __init__(self, port: int, body: Path, concurrency: int, *, max_s: float, timeout_s: float,
                 path: str = "/predict", headers: dict[str, str] | None = None):
        self.timeout_s = timeout_s
        self.threads = min(THREADS, concurrency)
        self.control = Path(tempfile.mkdtemp(prefix="wrk-control-"))
        self.started = time.time()  # epoch seconds, as HAProxy's log
        self.stopped: float | None = None
        self.process = _start(port, body, concurrency, max_s + timeout_s, path, headers, timeout_s, self.control)

    def running(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> dict:
        """Send no more requests, wait up to ``timeout_s`` for the open ones' answers, end wrk; its figures
        (``settle``), with ``stopped_at`` (epoch seconds)."""
        self.stopped = time.time()
        (self.control / "stop").touch()
        deadline = time.monotonic() + self.timeout_s
        drained = False
        while self.running() and time.monotonic() < deadline:
            if drained := len(list(self.control.glob("drained-*"))) == self.threads:
                break
            time.sleep(0.05)
        if self.running():
            self.process.send_signal(signal.SIGINT)  # wrk ends its threads, prints its totals
        try:
            result = _result(self.process, timeout=60)
            bodies = read_bodies(self.control / "bodies")
        finally:
            shutil.rmtree(self.control, ignore_errors=True)
        return {**settle(result, bodies, drained, self.timeout_s), "stopped_at": self.stopped}


@dataclass
class Tally:
    """What one server's measured rounds added up to."""

    requests: int = 0
    failed: int = 0
    wall_s: float = 0.0
    cpu_s: float = 0.0
    p50_ms: list[float] = field(default_factory=list)  # one per round
    p99_ms: list[float] = field(default_factory=list)
    # the failed requests by kind: wrk's (connect, read, write, status, timeout) or a gRPC status code's name
    errors: Counter[str] = field(default_factory=Counter)

    def add(self, result: dict, cpu_s: float) -> None:
        """One round: wrk's ``result`` (or one in its form) and the server CPU seconds it took."""
        self.cpu_s += cpu_s
        self.requests += result["requests"] - result["failed"]
        self.failed += result["failed"]
        self.errors.update({kind: count for kind, count in result["errors"].items() if count})
        self.wall_s += result["seconds"]
        self.p50_ms.append(result["p50_ms"])
        self.p99_ms.append(result["p99_ms"])

    def summary(self) -> dict:
        return {
            "requests": self.requests,
            "failed": self.failed,
            "errors": dict(sorted(self.errors.items())),
            "requests_per_s": self.requests / self.wall_s,
            "p50_ms": float(np.median(self.p50_ms)),  # the median round's
            "p99_ms": max(self.p99_ms),  # the worst round's: percentiles of separate runs do not average
            "server_cpu_ms_per_request": 1000 * self.cpu_s / max(self.requests, 1),
        }


def failed_cell(row: dict) -> str:
    """A report's "failed" cell for a Tally's ``summary``: the count, and its kinds when there are any, so that a
    failure in a report or a test's message says what it was ("2 (read 1, timeout 1)")."""
    kinds = ", ".join(f"{kind} {count}" for kind, count in row["errors"].items())
    return f"{row['failed']} ({kinds})" if kinds else str(row["failed"])


def load_round(server: Server, tally: Tally, body: Path, concurrency: int, seconds: int, path: str = "/predict",
               headers: dict[str, str] | None = None) -> None:
    """One measured round of wrk load on ``server``, added to ``tally`` with the server CPU it took."""
    cpu_before = server.cpu_seconds()
    result = wrk(server.port, body, concurrency, seconds, path, headers)
    tally.add(result, server.cpu_seconds() - cpu_before)
