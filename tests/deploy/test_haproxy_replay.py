"""HAProxy replays a request whose replica fails it on the other replica, body included, as its configuration's
``retries`` / ``option redispatch`` / ``retry-on`` lines promise: no container, two small HTTP servers on 127.0.0.1
stand in for the replicas, one of which reads each upload whole and then fails it (closes the connection without a
word, as a replica killed mid-request; answers 503, as a replica without a model; or answers bytes that are not
HTTP). A body over HAProxy's buffer (``tune.bufsize``) cannot be replayed, and is not."""

from __future__ import annotations

import hashlib
import http.client
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from cifar10_pipeline.deploy.replicas import haproxy
from cifar10_pipeline.deploy.replicas.haproxy import BUFFER_BYTES, Checks
from harness.server import free_port
from tests.support.polling import wait_for

# far over HAProxy's default buffer (16 kB), which could not replay it, and within BUFFER_BYTES
UPLOAD_BYTES = 300_000
REQUESTS = 6


class Replica(BaseHTTPRequestHandler):
    """/readyz answers 200 (the health check passes); a POST is read whole, then answered with its body's sha256,
    or failed the way ``failure`` says: "close" (no answer), "503", or "junk" (bytes that are not HTTP)."""

    failure: str | None = None

    def do_GET(self):
        self._answer(200, b"ready")

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.failure is None:
            self._answer(200, hashlib.sha256(body).hexdigest().encode())
        elif self.failure == "503":
            self._answer(503, b"no model is loaded")
        else:
            if self.failure == "junk":
                self.wfile.write(b"this is not HTTP\r\n\r\n")
                self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True

    def _answer(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):  # quiet: the test reads HAProxy's log, not these
        pass


@pytest.fixture
def balancer(tmp_path, request):
    """HAProxy with the project's configuration on 127.0.0.1, replica-1 failing every POST the way the test's
    ``failure`` parameter says, replica-2 healthy: its port and log."""
    failing = type("Failing", (Replica,), {"failure": request.param})
    servers = [ThreadingHTTPServer(("127.0.0.1", 0), handler) for handler in (failing, Replica)]
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    port, config, log = free_port(), tmp_path / "haproxy.cfg", tmp_path / "haproxy.log"
    config.write_text(haproxy.render_config(port, free_port(), tmp_path / "stats.sock",
                                            [(f"replica-{i}", s.server_address[1]) for i, s in enumerate(servers, 1)],
                                            Checks()))
    process = haproxy.start(config, log)
    yield port, log
    haproxy.stop(process.pid, config)
    for server in servers:
        server.shutdown()
        server.server_close()


def post(port: int, body: bytes) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("POST", "/predict", body=body, headers={"Content-Type": "application/octet-stream"})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def logged(log, count: int) -> list[haproxy.Request]:
    """The ``count`` request lines of ``log`` (HAProxy writes a request's line once it ends, a moment after the
    answer)."""
    def all_logged():
        requests = haproxy.read_log(log)[0]
        return requests if len(requests) == count else None

    return wait_for(all_logged, f"{count} request lines in {log}")


@pytest.mark.parametrize("balancer", ["close", "503", "junk"], indirect=True)
def test_an_upload_its_replica_fails_is_replayed_whole_on_the_other(balancer):
    port, log = balancer
    body = bytes(range(256)) * (UPLOAD_BYTES // 256)
    for _ in range(REQUESTS):
        assert post(port, body) == (200, hashlib.sha256(body).hexdigest().encode())  # the whole body reached it
    requests = logged(log, REQUESTS)
    # every request was answered by the healthy replica; round robin sent some to the failing one first, and each
    # of those was replayed once, redispatched (the log's "+") to the other replica rather than tried again there
    assert {r.server for r in requests} == {"replica-2"}
    assert {(r.retries, r.redispatched) for r in requests} <= {(0, False), (1, True)}
    assert sum(r.retries > 0 for r in requests) >= REQUESTS // 2 - 1


@pytest.mark.parametrize("balancer", ["close"], indirect=True)
def test_an_upload_over_the_buffer_is_not_replayed(balancer):
    # what the configuration says of BUFFER_BYTES: a larger body streams through, so it cannot be sent again
    port, log = balancer
    body = bytes(2 * BUFFER_BYTES)
    statuses = [post(port, body)[0] for _ in range(REQUESTS)]
    requests = logged(log, REQUESTS)
    lost = [r for r in requests if r.server == "replica-1"]
    assert lost and all(r.retries == 0 for r in lost)  # round robin sent some there; none was replayed
    assert sorted(statuses) == sorted(r.status for r in requests)
    assert statuses.count(200) == REQUESTS - len(lost) and all(s == 502 for s in statuses if s != 200)
