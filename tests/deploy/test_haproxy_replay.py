"""HAProxy replays a request whose replica dies before answering on the other replica, body included: no container,
two small HTTP servers on 127.0.0.1 stand in for the replicas, one of which reads each upload whole and then closes
the connection without a word (a replica killed mid-request)."""

from __future__ import annotations

import http.client
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from cifar10_pipeline.deploy.replicas import haproxy
from cifar10_pipeline.deploy.replicas.haproxy import Checks
from harness.server import free_port
from tests.support.polling import wait_for

# far over HAProxy's default buffer (16 kB), which could not replay it, and within BUFFER_BYTES
UPLOAD_BYTES = 300_000
REQUESTS = 6


class Replica(BaseHTTPRequestHandler):
    """/readyz answers 200 (the health check passes); a POST is read whole, then answered with its length, or, on a
    dying replica, the connection is closed without an answer."""

    dying = False

    def do_GET(self):
        self._answer(b"ready")

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.dying:
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True
            return
        self._answer(str(len(body)).encode())

    def _answer(self, body: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):  # quiet: the test reads HAProxy's log, not these
        pass


class Dying(Replica):
    dying = True


@pytest.fixture
def balancer(tmp_path):
    """HAProxy with the project's configuration on 127.0.0.1, replica-1 dying, replica-2 healthy: its port and log."""
    servers = [ThreadingHTTPServer(("127.0.0.1", 0), handler) for handler in (Dying, Replica)]
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


def test_an_upload_whose_replica_dies_before_answering_is_replayed_on_the_other(balancer):
    port, log = balancer
    body = bytes(range(256)) * (UPLOAD_BYTES // 256)
    for _ in range(REQUESTS):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("POST", "/predict", body=body, headers={"Content-Type": "application/octet-stream"})
        response = conn.getresponse()
        assert (response.status, response.read()) == (200, str(len(body)).encode())
        conn.close()
    # HAProxy writes a request's log line once it ends, a moment after the answer
    def all_logged():
        requests = haproxy.read_log(log)[0]
        return requests if len(requests) == REQUESTS else None

    requests = wait_for(all_logged, f"{REQUESTS} request lines in {log}")
    # every request was answered by the healthy replica; round robin sent some to the dying one first
    assert {r.server for r in requests} == {"replica-2"}
    assert sum(r.retries > 0 for r in requests) >= REQUESTS // 2 - 1
