"""`make ui` as the tests start it: the MLflow UI, which is also a tracking server, on a free port of 127.0.0.1 over
a given store. Shared by the UI's test and the test of a tracking server that dies mid-run."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from harness.server import free_port, wait_ready
from tests.support.paths import REPO


@dataclass
class Ui:
    port: int
    process: subprocess.Popen  # make, the leader of a process group of its own (make, mlflow and its server)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> None:
        """Send ``sig`` to the whole group (SIGKILL: a server that dies), unless it is gone; wait for make."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, sig)
        self.process.wait(timeout=60)


@contextmanager
def ui(store_uri: str, log: Path) -> Iterator[Ui]:
    """`make ui` over ``store_uri``, its output in ``log``; yields it once /health answers, stops it afterwards."""
    port = free_port()
    with log.open("wb") as out:
        process = subprocess.Popen(["make", "-C", str(REPO), "ui", f"UI_PORT={port}"], stdout=out, stderr=out,
                                   env={**os.environ, "MLFLOW_TRACKING_URI": store_uri}, start_new_session=True)
    server = Ui(port, process)
    try:
        wait_ready(server.url, process, log, path="/health", timeout=600)
        yield server
    finally:
        server.stop()
