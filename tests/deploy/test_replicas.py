"""Replicas behind HAProxy with podman: all on loopback, a rollout under load with a corrupt file among the new
ones, a replica killed under load (each of these with either serving image), and nothing left behind by `down`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from cifar10_pipeline.deploy.replicas import haproxy, podman, stack
from harness.rollout import Counts, kill_under_load, rollout_under_load
from tests.support.api import sha256
from tests.support.images import png
from tests.support.net import predict
from tests.support.paths import REPO

pytestmark = pytest.mark.containers

# the load lasts until the rollout is done, or HAProxy marked the killed replica DOWN, and settle_s more: it covers
# them on a slow machine as on a fast one (no minimum length needed)
COUNTS = Counts(concurrency=4, settle_s=1.5, rollout_load_s=0, kill_load_s=0)


def test_replicas_publish_on_loopback_only_and_the_balancer_spreads_requests(running, old_model):
    for replica in running.replicas:
        bindings = json.loads(podman.podman("inspect", "--format", "{{json .NetworkSettings.Ports}}",
                                            replica.container).stdout)
        published = {port: hosts for port, hosts in bindings.items() if hosts}  # the gRPC port (EXPOSE 8001): off
        assert published == {"8000/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(replica.port)}]}
        assert stack.info(replica)["model_id"] == sha256(old_model)
    backends = [line.split()[2] for line in running.haproxy_config.read_text().splitlines()
                if line.strip().startswith("server ")]
    assert backends == [f"127.0.0.1:{r.port}" for r in running.replicas]
    for _ in range(6):
        status, answer = predict(running.url, [("a.png", png())])
        assert status == 200 and answer["model_id"] == sha256(old_model)
    servers = haproxy.server_stats(running.stats_socket)
    assert {name: row["status"] for name, row in servers.items()} == {"replica-1": "UP", "replica-2": "UP"}
    assert all(int(row["stot"]) == 3 for row in servers.values())  # round robin: 3 each


def test_rollout_under_load_loses_no_request_and_refuses_the_corrupt_file(running, old_model, new_model, upload):
    figures = rollout_under_load(running, new_model, "replica-2", upload, COUNTS)
    assert figures["rollout_under_load"] and figures["load_before_s"] > 0 and figures["load_after_s"] > 0, figures
    # every request sent answered 2xx, none cut off when the load stopped, none given up at the balancer
    assert figures["sent"] > 0 and figures["failed"] == 0 and figures["unanswered"] == 0, figures
    assert figures["balancer_failed"] == 0 and figures["client_aborted"] == 0, figures
    assert figures["answers_by_model"]["other"] == 0 and figures["answers_by_model"]["new"] > 0, figures
    assert all(count > 0 for count in figures["requests_by_replica"].values()), figures
    steps = [(s["replica"], s["file"], s["swapped"], bool(s["refused"])) for s in figures["steps"]]
    assert steps == [("replica-1", "new", True, False), ("replica-2", "corrupt", False, True),
                     ("replica-2", "new", True, False)]
    assert figures["corrupt_refused"] and "cannot load it" in figures["corrupt_reason"]
    # read back through each replica's own port, not the balancer
    assert figures["final_model_ids"] == {"replica-1": sha256(new_model), "replica-2": sha256(new_model)}
    assert figures["readiness_covered_rollout"] and figures["readiness_samples"] > 0  # sampled before and after
    assert figures["not_ready_samples"] == {"replica-1": 0, "replica-2": 0}
    assert figures["not_up_samples"] == {"replica-1": 0, "replica-2": 0}
    assert figures["down_transitions"] == 0 and figures["routed_to_down_replica"] == 0


def test_a_killed_replica_is_drained_within_the_detection_window(running, upload):
    figures = kill_under_load(running, "replica-2", upload, COUNTS)
    window = running.checks.detection_window_s()
    assert figures["detection_window_s"] == window
    # timed from the container's own end (podman's record), not from when podman was asked, which a busy machine
    # delays: HAProxy's checks run on its own timers, so the window holds on a slow machine too
    assert figures["detected_after_s"] is not None and 0 < figures["detected_after_s"] <= window, figures
    how = {key: figures[key] for key in ("sent", "failed", "unanswered", "errors", "balancer_failures")}
    assert figures["sent"] > 0 and figures["failed"] == 0 and figures["unanswered"] == 0, how
    assert figures["balancer_failed_after_window"] == 0, how
    assert figures["sent_to_victim_after_marked_down"] == 0, figures
    assert figures["requests_after_kill"] > 0
    assert haproxy.server_stats(running.stats_socket)["replica-2"]["status"] == "DOWN"
    status, _ = predict(running.url, [("a.png", png())])
    assert status == 200  # the survivor serves


def test_down_removes_the_containers_and_haproxy(old_model, tmp_path):
    state_dir = tmp_path / "stack"
    up = stack.up(old_model, replicas=1, port=stack.free_base_port(1), state_dir=state_dir, log=lambda _: None)
    assert haproxy.running(up.haproxy_pid, up.haproxy_config)
    stack.down(state_dir, log=lambda _: None)
    assert not haproxy.running(up.haproxy_pid, up.haproxy_config)
    left = podman.podman("ps", "-a", "-q", "--filter", f"label={stack.CONTAINER_LABEL}={state_dir.resolve()}")
    assert left.stdout.split() == []
    assert stack.get(f"{up.url}/readyz", timeout=2)[0] == 0  # nothing listens on the balancer's port
    with pytest.raises(FileNotFoundError, match="no replicas are running"):
        stack.load(state_dir)
    assert not os.path.exists(up.stats_socket)


def test_ctrl_c_in_the_foreground_removes_the_containers_and_haproxy(old_model, tmp_path):
    state_dir = tmp_path / "stack"
    port = stack.free_base_port(2)
    log = tmp_path / "up.log"
    with log.open("w") as out:
        process = subprocess.Popen([sys.executable, "-m", "cifar10_pipeline.deploy.replicas", "--state-dir",
                                    str(state_dir), "up", "--model", str(old_model), "--port", str(port)],
                                   cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + stack.READY_TIMEOUT_S
        while "Ctrl-C stops" not in log.read_text():
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        assert predict(f"http://127.0.0.1:{port}", [("a.png", png())])[0] == 200
        pid = stack.load(state_dir).haproxy_pid
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=60) == 0, log.read_text()
    finally:
        if process.poll() is None:
            process.kill()
            stack.down(state_dir, log=lambda _: None)
    assert "removed 2 containers" in log.read_text()
    left = podman.podman("ps", "-a", "-q", "--filter", f"label={stack.CONTAINER_LABEL}={state_dir.resolve()}")
    assert left.stdout.split() == []
    assert not haproxy.running(pid, state_dir / "haproxy.cfg")
    assert stack.get(f"http://127.0.0.1:{port}/readyz", timeout=2)[0] == 0
