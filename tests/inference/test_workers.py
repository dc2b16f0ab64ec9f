"""A server with two worker processes (``--workers 2``): whichever worker answers a scrape of /metrics, it reports
the requests of both, and each worker's model; with ``GRPC_PORT`` both workers listen on that port and answer
gRPC calls."""

from __future__ import annotations

import time
import urllib.request
from pathlib import Path

import grpc
import pytest

from cifar10_pipeline.inference.v2.grpc_messages import protos, stub
from harness.server import free_port, served
from tests.support.api import parse_metrics, sha256
from tests.support.images import png
from tests.support.net import predict
from tests.support.onnx_models import write_model
from tests.support.v2 import pixels

REQUESTS = 40
LOADS = 'inference_model_loads_total{result="ok"}'
START_S = 60  # how long the second worker may take to load its model after the first is ready


def scrape(base: str) -> dict[str, float]:
    with urllib.request.urlopen(f"{base}/metrics", timeout=30) as response:  # a new connection each time
        return parse_metrics(response.read().decode())


def worker_pids(metrics: dict[str, float]) -> set[int]:
    """The workers' process ids, from the model each one reports."""
    return {int(key.split('pid="')[1].split('"')[0]) for key in metrics if key.startswith("inference_model_info")}


def accepted_by(pid: int, port: int) -> int:
    """How many established TCP connections to ``port`` on this machine process ``pid`` holds as their server end
    (``/proc``: its file descriptors' socket inodes against the kernel's TCP tables)."""
    sockets = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        target = str(fd.readlink()) if fd.is_symlink() else ""
        if target.startswith("socket:["):
            sockets.add(target[len("socket:["):-1])
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()  # sl, local address:port (hex), remote, state (01: established), ..., inode
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "01" and fields[9] in sockets:
                count += 1
    return count


def wait_for_both_workers(base: str) -> None:
    """The server is ready when its first worker is: scrape until both have loaded their model, so that both can
    take requests (a worker still loading takes none, and the test would see one worker)."""
    deadline = time.monotonic() + START_S
    while scrape(base).get(LOADS, 0) < 2:
        assert time.monotonic() < deadline, f"the second worker did not load its model within {START_S} s"
        time.sleep(0.2)


@pytest.mark.slow
def test_two_workers_report_one_coherent_set_of_metrics(tmp_path):
    settings = {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"), "INFERENCE_RELOAD_POLL_S": "0",
                "INFERENCE_MODEL_PATH": str(write_model(tmp_path / "model.onnx", seed=0))}
    with served(settings, tmp_path / "server.log", "--workers", "2", "--threads", "2") as base:
        wait_for_both_workers(base)
        for _ in range(REQUESTS):  # each on a new connection: the kernel spreads them over the workers
            assert predict(base, [("a.png", png())])[0] == 200
        scrapes = [scrape(base) for _ in range(6)]
    for m in scrapes:
        assert m['inference_requests_total{endpoint="/predict",status="200"}'] == REQUESTS
        assert m["inference_batch_size_count"] == REQUESTS
        assert m[LOADS] == 2  # each worker loaded the model once
        assert m["inference_ready"] == 1
        assert len(worker_pids(m)) == 2, m.keys()


@pytest.mark.slow
def test_both_workers_listen_on_the_grpc_port_and_answer(tmp_path):
    model = write_model(tmp_path / "model.onnx", seed=0)
    grpc_port = free_port()
    settings = {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"), "INFERENCE_RELOAD_POLL_S": "0",
                "INFERENCE_MODEL_PATH": str(model), "GRPC_PORT": str(grpc_port)}
    image = pixels(1)
    tensor = protos.ModelInferRequest.InferInputTensor(name="image", datatype="UINT8", shape=list(image.shape))
    request = protos.ModelInferRequest(model_name="classifier", inputs=[tensor], raw_input_contents=[image.tobytes()])
    with served(settings, tmp_path / "server.log", "--workers", "2", "--threads", "2") as base:
        wait_for_both_workers(base)
        # a connection each (grpcio shares one between the channels of a process unless told not to), held open:
        # the kernel spreads the connections over the two listening sockets
        channels = [grpc.insecure_channel(f"127.0.0.1:{grpc_port}", options=[("grpc.use_local_subchannel_pool", 1)])
                    for _ in range(REQUESTS)]
        try:
            answers = [stub(channel).ModelInfer(request, timeout=60) for channel in channels]
            metrics = scrape(base)
            accepted = {pid: accepted_by(pid, grpc_port) for pid in worker_pids(metrics)}
        finally:
            for channel in channels:
                channel.close()
    assert {a.model_version for a in answers} == {sha256(model)}
    assert metrics['inference_requests_total{endpoint="/inference.GRPCInferenceService/ModelInfer",status="OK"}'] \
        == REQUESTS
    assert len(accepted) == 2 and sum(accepted.values()) == REQUESTS and min(accepted.values()) > 0, accepted
