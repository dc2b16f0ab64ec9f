"""The counted load (harness.load.Counted) accounts for every request wrk sends: against a small server on 127.0.0.1
that answers most requests, answers some with 500, drops one connection mid-request and never answers one, each
request sent ends answered or unanswered, the answers' bodies are tallied, and the stop waits for the requests
still open instead of cutting them off."""

from __future__ import annotations

import itertools
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from harness.load import Counted, failures, read_bodies, settle

DROPPED, HUNG = 3, 5  # the requests (in arrival order) that get no answer: a dropped connection, a hung handler
ERROR_EVERY = 10  # every 10th request (from the 10th) is answered 500


def serve(slow_s: float = 0.0, faults: bool = True) -> tuple[ThreadingHTTPServer, threading.Event]:
    """A server on a free loopback port answering POSTs with "even" or "odd" (by arrival), a 500 for every
    ERROR_EVERY-th, each after ``slow_s``; with ``faults``, no answer for DROPPED (connection closed) and HUNG
    (held until the returned event is set, then closed)."""
    arrivals, release = itertools.count(), threading.Event()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as wrk's connections are

        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            n = next(arrivals)
            if faults and n == DROPPED:
                self.close_connection = True
                return
            if faults and n == HUNG:
                release.wait(30)
                self.close_connection = True
                return
            time.sleep(slow_s)
            body = b"odd" if n % 2 else b"even"
            self.send_response(500 if n and n % ERROR_EVERY == 0 else 200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, release


@pytest.fixture
def upload(tmp_path):
    path = tmp_path / "upload.bin"
    path.write_bytes(bytes(range(256)) * 8)
    return path


def test_every_request_sent_ends_answered_or_unanswered_and_the_bodies_are_tallied(upload):
    server, release = serve()
    try:
        load = Counted(server.server_address[1], upload, 4, max_s=60, timeout_s=1)
        time.sleep(1.5)
        result = load.stop()
    finally:
        release.set()
        server.shutdown()
    assert result["sent"] == result["answered"] + result["unanswered"] and result["sent"] > 20
    assert result["unanswered"] == 2  # the dropped connection's request and the hung one
    assert result["requests"] == result["answered"]  # wrk's own count of answers agrees with the Lua hooks'
    by_body = {(t["status"], t["body"]): t["count"] for t in result["bodies"]}
    assert sum(by_body.values()) == result["answered"]
    assert by_body[(500, "even")] == result["errors"]["status"] > 0  # every 10th is even
    assert by_body[(200, "odd")] > 0 and by_body[(200, "even")] > 0
    assert result["failed"] == result["unanswered"] + result["errors"]["status"]
    assert not result["drained"]  # the hung request was still open when the stop gave up on it
    assert failures(result).startswith(f"{result['failed']} of {result['sent']:,} sent (2 unanswered, ")


def test_the_stop_waits_for_the_requests_still_open(upload):
    server, _ = serve(slow_s=0.3, faults=False)
    try:
        load = Counted(server.server_address[1], upload, 4, max_s=60, timeout_s=20)
        time.sleep(1)  # each connection has a request open at any moment: the stop comes in the middle of some
        result = load.stop()
    finally:
        server.shutdown()
    # every wrk thread saw all its open requests answered before the timeout: none was cut off by the stop
    assert result["drained"] and result["open_at_stop"] > 0
    assert result["unanswered"] == 0 and result["sent"] == result["answered"] > 0


def test_the_bodies_file_reads_back_every_tally(tmp_path):
    path = tmp_path / "bodies"
    path.write_bytes(b"3 200 5\nhello" + b"7 500 6\nline\n2" + b"1 200 0\n")
    assert read_bodies(path) == [{"status": 500, "body": "line\n2", "count": 7},
                                 {"status": 200, "body": "hello", "count": 3},
                                 {"status": 200, "body": "", "count": 1}]


def test_failures_count_each_request_once():
    result = {"sent": 100, "answered": 96, "requests": 96, "timeout_s": 5,
              "errors": {"connect": 1, "read": 3, "write": 0, "status": 2, "timeout": 1}}
    settled = settle(result, [], drained=False, timeout_s=5)
    # 4 unanswered (3 of them the read errors), 2 answered >= 400, 1 late; the refused connection sent nothing
    assert settled["unanswered"] == 4 and settled["failed"] == 4 + 2 + 1 + 1
