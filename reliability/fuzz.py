"""Fuzz: >= 10,000 generated malformed requests (``fuzz_inputs``) to /predict and /v2/models/<name>/infer of one
real server process (``cifar10-serve``, its default settings, on 127.0.0.1), one after another,
each on its own connection (``Connection: close``). When the headers promise more body than is sent (a
Content-Length lie, a chunked body), the client half-closes the connection after sending, so the server sees
the body end early instead of waiting for the rest.

Goals: no answer >= 500; every request answered (a status line) within ANSWER_TIMEOUT_S, except that a request
carrying both Content-Length and Transfer-Encoding may be refused by closing its connection (RFC 9112 section 6.1
lets a server reject such a request, a request-smuggling attempt, and requires it to close the connection; granian,
the HTTP server, closes without a word); no traceback or unhandled error in the server's log; the same worker
process before and after (no crash, no respawn); and a good request answered as onnxruntime answers it at the end.
Every answer's status is counted per category, with the connections closed without an answer and the timeouts.
"""

from __future__ import annotations

import socket
import time
from collections import Counter
from pathlib import Path
from typing import Any

from cifar10_pipeline.inference.config import ServiceConfig
from reliability.fuzz_inputs import Request, categories, requests
from reliability.serving import (
    answers_correctly,
    cnn_model,
    goal,
    goals_markdown,
    info,
    start_server,
    workdir,
)

NAME = "fuzz"
SEED = 13
FULL_COUNT, SMOKE_COUNT = 10_000, 300
TIME_LIMIT_S = 1800  # the whole fuzz stops here, however many inputs are left (a missed goal, then)
ANSWER_TIMEOUT_S = 15.0  # one request's answer; no answer by then counts as "timeout"
NO_ANSWER, TIMEOUT = "closed, no answer", "timeout"


def send(port: int, request: Request) -> str:
    """Send ``request`` on a new connection (half-closed after it when its body is short), read the answer:
    its status code as a string, or NO_ANSWER / TIMEOUT."""
    with socket.create_connection(("127.0.0.1", port), timeout=ANSWER_TIMEOUT_S) as conn:
        try:
            conn.sendall(request.raw())
            if request.short_body:
                conn.shutdown(socket.SHUT_WR)
        except OSError:  # the server answered (413) and closed before the whole body was sent: read the answer
            pass
        received = b""
        try:
            while b"\r\n" not in received:
                chunk = conn.recv(4096)
                if not chunk:
                    break
                received += chunk
        except TimeoutError:
            return TIMEOUT
        except OSError:  # reset by the server after it answered or instead of answering
            pass
    status_line = received.split(b"\r\n", 1)[0].split()
    return status_line[1].decode() if len(status_line) >= 2 and status_line[1].isdigit() else NO_ANSWER


def may_close(request: Request) -> bool:
    """Whether the server may refuse ``request`` by closing its connection without an answer: it carries both
    Content-Length and Transfer-Encoding (RFC 9112 section 6.1: a request-smuggling attempt, which a server may
    reject, and after which it must close the connection)."""
    names = {name.lower() for name, _ in request.headers}
    return {"content-length", "transfer-encoding"} <= names


def server_errors(log: Path) -> int:
    """Tracebacks and "unhandled error" lines in the server's log."""
    text = log.read_text(errors="replace")
    return text.count("Traceback (most recent call last)") + text.count("unhandled error")


def run(smoke: bool) -> dict[str, Any]:
    count = SMOKE_COUNT if smoke else FULL_COUNT
    model = cnn_model()
    model_path = workdir() / "fuzz.onnx"
    model_path.write_bytes(model)
    server = start_server("fuzz", model_path)
    try:
        ok_before, _ = answers_correctly(server.port, model)
        pid_before, pids_before = info(server.port)["pid"], sorted(server.pids())
        statuses = {name: Counter() for name in categories()}
        started, sent = time.perf_counter(), 0
        closed = {True: 0, False: 0}  # connections closed without an answer: allowed (may_close) or not
        for request in requests(count, SEED, ServiceConfig()):
            if time.perf_counter() - started > TIME_LIMIT_S:
                break
            answer = send(server.port, request)
            statuses[request.category][answer] += 1
            if answer == NO_ANSWER:
                closed[may_close(request)] += 1
            sent += 1
            if sent % 1000 == 0:
                print(f"fuzz: {sent}/{count} sent", flush=True)
        seconds = time.perf_counter() - started
        ok_after, compared = answers_correctly(server.port, model)
        pid_after, pids_after = info(server.port)["pid"], sorted(server.pids())
    finally:
        server.stop()

    total = Counter()
    for counter in statuses.values():
        total.update(counter)
    errors_5xx = sum(n for status, n in total.items() if status.isdigit() and int(status) >= 500)
    restarts = 0 if (pid_before, pids_before) == (pid_after, pids_after) else 1
    log_errors = server_errors(server.log)
    return {
        "inputs": sent,
        "seed": SEED,
        "seconds": seconds,
        "by_category": {name: dict(sorted(counter.items())) for name, counter in statuses.items()},
        "by_status": dict(sorted(total.items())),
        "responses_5xx": errors_5xx,
        "worker_pid": {"before": pid_before, "after": pid_after},
        "server_pids": {"before": pids_before, "after": pids_after},
        "server_log_errors": log_errors,
        "closed_without_answer": {"allowed": closed[True], "not_allowed": closed[False]},
        "timeouts": total[TIMEOUT],
        "good_request": {"before": ok_before, "after": ok_after, "compared": compared},
        "goals": [
            goal(f">= {count:,} malformed inputs sent", sent >= count, f"{sent:,} in {seconds:.0f} s"),
            goal("0 responses >= 500", errors_5xx == 0, str(errors_5xx)),
            goal("0 connections closed without an answer, but for requests with both Content-Length and "
                 "Transfer-Encoding (RFC 9112 section 6.1: refused by closing)", closed[False] == 0,
                 f"{closed[False]} (and {closed[True]} with both headers, allowed)"),
            goal(f"0 timeouts (no answer within {ANSWER_TIMEOUT_S:g} s)", total[TIMEOUT] == 0, str(total[TIMEOUT])),
            goal("0 tracebacks or unhandled errors in the server's log", log_errors == 0, str(log_errors)),
            goal("0 worker restarts (same pids before and after)", restarts == 0,
                 f"worker pid {pid_before} -> {pid_after}, server processes {pids_before} -> {pids_after}"),
            goal("a good request answers correctly at the end", ok_before and ok_after, compared),
        ],
    }


def markdown(figures: dict[str, Any]) -> str:
    columns = sorted(figures["by_status"], key=lambda s: (not s.isdigit(), s))
    lines = [
        "# Fuzz: malformed requests to /predict and /v2 infer",
        "",
        (f"{figures['inputs']:,} generated malformed requests (seed {figures['seed']}, "
        "`reliability/fuzz_inputs.py`), one connection each, to one `cifar10-serve` process "
        f"(default settings) on 127.0.0.1, in {figures['seconds']:.0f} s. Answers by category and status:"),
        "",
        "| category | inputs | " + " | ".join(columns) + " |",
        "| --- | ---: | " + " | ".join("---:" for _ in columns) + " |",
    ]
    for name, counter in figures["by_category"].items():
        cells = " | ".join(str(counter.get(status, "")) for status in columns)
        lines.append(f"| {name} | {sum(counter.values()):,} | {cells} |")
    total = figures["by_status"]
    lines.append(f"| **all** | {sum(total.values()):,} | " + " | ".join(str(total[s]) for s in columns) + " |")
    lines += ["", ("A 200 is an input the service could still read: a flipped bit in pixel data decodes to other "
                   "pixels, a content type naming an image type after junk still names it, and a Content-Length "
                   "lie can leave the whole image readable. A JSON `true` in UINT8 tensor data is refused (400), "
                   "not read as 1."),
              "", (f"{NO_ANSWER!r}: the connection ended without a status line. "
              f"{figures['closed_without_answer']['allowed']} of them carried both Content-Length and "
              "Transfer-Encoding, which granian, the HTTP server, refuses this way: RFC 9112 section 6.1 lets a "
              "server reject such a request (a request-smuggling attempt) and requires it to close the connection. "
              f"Any other request closed without an answer misses a goal: "
              f"{figures['closed_without_answer']['not_allowed']}. {TIMEOUT!r} (no status line within "
              f"{ANSWER_TIMEOUT_S:g} s): {figures['timeouts']}."),
              "", f"Tracebacks or unhandled errors in the server's log: {figures['server_log_errors']}.", ""]
    lines += goals_markdown(figures["goals"])
    return "\n".join(lines) + "\n"
