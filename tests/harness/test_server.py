"""The one server harness: a server started on port 0 is waited for until it reports its port and /readyz answers
there (one that can only listen on a given port is given one), reported with its log when it exits or never gets
ready, and stopped together with the processes it started."""

from __future__ import annotations

import sys
import urllib.request
from pathlib import Path

import pytest

from harness.server import Server, ServerError, free_port, wait_ready
from tests.support.polling import wait_for

# a server that starts a helper process, then answers 200 on /readyz and 404 elsewhere, on $PORT; given port 0 it
# writes the port it got to $SERVER_PORT_FILE, as the service does
SERVER = """
import http.server, os, pathlib, subprocess, sys
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/readyz" else 404)
        self.end_headers()
    def log_message(self, *args):
        pass
server = http.server.HTTPServer((os.environ["HOST"], int(os.environ["PORT"])), Handler)
if os.environ["PORT"] == "0":
    pathlib.Path(os.environ["SERVER_PORT_FILE"]).write_text(f"{server.server_address[1]}\\n")
server.serve_forever()
"""


def running(pid: int) -> bool:
    """A process that has not ended (a zombie has ended: only its exit status is left)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def test_a_server_is_ready_on_its_port_then_stopped_with_what_it_started(tmp_path):
    with Server({}, tmp_path / "server.log", "-c", SERVER, command=[sys.executable]) as server:
        assert server.url == f"http://127.0.0.1:{server.port}" and server.start_to_ready_s > 0
        with urllib.request.urlopen(f"{server.url}/readyz", timeout=10) as response:
            assert response.status == 200
        pids = server.pids()
        assert len(pids) == 2 and pids[0] == server.process.pid  # the server and its helper
    assert server.process.poll() is not None
    wait_for(lambda: not any(running(pid) for pid in pids), "the helper to end")  # SIGKILL lands asynchronously


def test_a_command_that_listens_on_a_given_port_is_given_it_and_waited_for_there(tmp_path):
    # a benchmark's peer servers cannot bind port 0 and report it: they get a free port as PORT and are waited for
    port = free_port()
    with Server({}, tmp_path / "server.log", "-c", SERVER, command=[sys.executable], port=port) as server:
        assert server.port == port
        with urllib.request.urlopen(f"{server.url}/readyz", timeout=10) as response:
            assert response.status == 200
    assert not (tmp_path / "server.log.port").exists()  # no port file asked for, none written


def test_a_server_that_exits_while_starting_is_an_error_quoting_its_log(tmp_path):
    command = [sys.executable, "-c", "print('no model at models/model.onnx', flush=True); raise SystemExit(3)"]
    with pytest.raises(ServerError, match=r"exited with 3:\nno model at models/model.onnx"):
        Server({}, tmp_path / "server.log", command=command)


def test_nothing_listening_is_not_ready_in_time():
    with pytest.raises(ServerError, match="not ready after 0.3 s"):
        wait_ready(f"http://127.0.0.1:{free_port()}", timeout=0.3)
