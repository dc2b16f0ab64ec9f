"""A model rolled through replicas behind HAProxy under load, and a replica killed under load: what the replica
tests assert and the rollout benchmark reports.

Under wrk's load through the balancer (``harness.load``): ``rollout_under_load`` replaces each replica's model file in
turn, one replica first getting a corrupt copy (the new file cut in half), which it must refuse while keeping its
old model; ``kill_under_load`` runs ``podman kill`` on one replica. Both return their figures: wrk's totals, each
replica's model at the end (its /info on its own port), readiness sampled on every replica's own port and in
HAProxy's stats socket, and HAProxy's log read for failed requests and for requests sent to a server marked DOWN.
Needs what ``cifar10_pipeline.deploy.replicas`` needs (root, podman, the CPU image, HAProxy) and wrk.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

from cifar10_pipeline.deploy.replicas import haproxy, podman, stack
from cifar10_pipeline.deploy.replicas.stack import Stack
from harness.load import LoadError, wrk

WATCH_PERIOD_S = 0.2  # how often readiness is sampled during the load


@dataclass(frozen=True)
class Counts:
    """How much load, and how long before the first swap or the kill."""

    concurrency: int  # wrk's connections to the balancer
    settle_s: float  # load before the first file is replaced, or before the kill
    rollout_load_s: int  # wrk's run during the rollout: long enough to cover it with load on both sides
    kill_load_s: int  # wrk's run around the kill; the kill comes settle_s after its start


class Load:
    """wrk against the balancer for ``seconds``, in a thread; wrk stops by itself at the end of its duration."""

    def __init__(self, port: int, body: Path, concurrency: int, seconds: int):
        self.result: dict = {}
        self.error: Exception | None = None
        self.started = time.time()
        self.seconds = seconds

        def run():
            try:
                self.result.update(wrk(port, body, concurrency, seconds))
            except Exception as e:  # reported by join()
                self.error = e

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()

    def join(self) -> dict:
        self._thread.join(timeout=self.seconds + 90)  # wrk's own time limit (harness.load.wrk) ends it before this
        if not self.result:
            raise LoadError(f"wrk gave no result: {self.error}")
        return self.result


class Watch:
    """Samples every replica's /readyz (on its own port) and HAProxy's view of it until stopped, at most
    ``max_s``: how often a replica was seen not ready, and not UP in HAProxy."""

    def __init__(self, running: Stack, max_s: float):
        self.not_ready = {r.name: 0 for r in running.replicas}
        self.not_up = {r.name: 0 for r in running.replicas}
        self.samples = 0
        self._stop = threading.Event()

        def run():
            deadline = time.monotonic() + max_s
            while not self._stop.wait(WATCH_PERIOD_S) and time.monotonic() < deadline:
                servers = haproxy.server_stats(running.stats_socket)
                for replica in running.replicas:
                    self.not_ready[replica.name] += stack.get(f"{replica.url}/readyz", timeout=2)[0] != 200
                    self.not_up[replica.name] += servers[replica.name]["status"] != "UP"
                self.samples += 1

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def failed(request: haproxy.Request) -> bool:
    """A request the client did not get an answer to: a 5xx or no response, unless the client gave up itself
    (wrk closes its connections mid-request when its time is up)."""
    return (request.status >= 500 or request.status < 0) and not request.termination.startswith("C")


def requests_between(running: Stack, start: float,
                     end: float) -> tuple[list[haproxy.Request], list[haproxy.Transition]]:
    requests, transitions = haproxy.read_log(running.haproxy_log)
    return [r for r in requests if start <= r.accepted <= end], [t for t in transitions if start <= t.at <= end]


def routed_while_down(requests: list[haproxy.Request], transitions: list[haproxy.Transition], end: float) -> int:
    """Requests HAProxy sent to a server while that server was marked DOWN."""
    down = {name: haproxy.down_intervals(transitions, name, end) for name in {r.server for r in requests}}
    return sum(any(a <= r.accepted < b for a, b in down[r.server]) for r in requests)


def rollout_under_load(running: Stack, new_model: Path, corrupt_replica: str, body: Path, counts: Counts) -> dict:
    """Roll ``new_model`` through the replicas under load, ``corrupt_replica`` getting a corrupt copy first."""
    data = new_model.read_bytes()
    new_id = stack.sha256(new_model)
    old_ids = {r.name: stack.info(r)["model_id"] for r in running.replicas}
    watch = Watch(running, max_s=counts.rollout_load_s + 30)
    load = Load(running.port, body, counts.concurrency, counts.rollout_load_s)
    time.sleep(counts.settle_s)
    steps, rollout_started = [], time.time()
    for replica in running.replicas:
        if replica.name == corrupt_replica:
            steps.append({"file": "corrupt", **stack.roll_replica(replica, data[: len(data) // 2]).__dict__})
        steps.append({"file": "new", **stack.roll_replica(replica, data).__dict__})
    rollout_ended = time.time()
    result = load.join()
    watch.stop()
    load_ended = time.time()
    requests, transitions = requests_between(running, load.started, load_ended)
    corrupt = next(s for s in steps if s["file"] == "corrupt")
    final = {r.name: stack.info(r)["model_id"] for r in running.replicas}
    return {
        "replicas": len(running.replicas),
        "concurrency": counts.concurrency,
        "load_s": result["seconds"],
        "rollout_s": rollout_ended - rollout_started,
        "rollout_under_load": rollout_ended < load.started + result["seconds"],  # load lasted past the last swap
        "requests": result["requests"],
        "failed": result["failed"],
        "p50_ms": result["p50_ms"],
        "p99_ms": result["p99_ms"],
        "steps": steps,
        "corrupt_refused": (not corrupt["swapped"] and corrupt["model_id"] == old_ids[corrupt_replica]
                            and bool(corrupt["refused"])),
        "corrupt_reason": corrupt["refused"],
        "old_model_id": next(iter(old_ids.values())),
        "new_model_id": new_id,
        "final_model_ids": final,
        "all_on_new_model": all(model_id == new_id for model_id in final.values()),
        "requests_by_replica": {r.name: sum(q.server == r.name for q in requests) for r in running.replicas},
        "balancer_failed": sum(failed(q) for q in requests),
        "readiness_samples": watch.samples,
        "not_ready_samples": watch.not_ready,
        "not_up_samples": watch.not_up,
        "down_transitions": len([t for t in transitions if t.state == "DOWN"]),
        "routed_to_down_replica": routed_while_down(requests, transitions, load_ended),
    }


def kill_under_load(running: Stack, victim: str, body: Path, counts: Counts) -> dict:
    """``podman kill`` the replica ``victim`` ``counts.settle_s`` into a load of ``counts.kill_load_s``."""
    replica = running.replica(victim)
    window = running.checks.detection_window_s()
    load = Load(running.port, body, counts.concurrency, counts.kill_load_s)
    time.sleep(counts.settle_s)
    killed_at = time.time()
    podman.podman("kill", replica.container)
    result = load.join()
    load_ended = time.time()
    requests, transitions = requests_between(running, load.started, load_ended)
    marked_down = next((t.at for t in transitions if t.server == victim and t.state == "DOWN" and t.at >= killed_at),
                       None)
    after_kill = [r for r in requests if r.accepted >= killed_at]
    return {
        "replicas": len(running.replicas),
        "concurrency": counts.concurrency,
        "victim": victim,
        "check": running.checks.__dict__,
        "detection_window_s": window,
        "detected_after_s": None if marked_down is None else marked_down - killed_at,
        "requests": result["requests"],
        "failed": result["failed"],
        "p50_ms": result["p50_ms"],
        "p99_ms": result["p99_ms"],
        "balancer_failed_before_window": sum(failed(r) for r in after_kill if r.accepted < killed_at + window),
        "balancer_failed_after_window": sum(failed(r) for r in after_kill if r.accepted >= killed_at + window),
        "replayed_on_another_replica": sum(r.retries > 0 for r in after_kill),
        "sent_to_victim_after_marked_down": sum(r.server == victim for r in after_kill
                                                if marked_down is not None and r.accepted >= marked_down),
        "requests_after_kill": len(after_kill),
    }
