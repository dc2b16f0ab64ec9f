"""A model rolled through replicas behind HAProxy under load, and a replica killed under load: what the replica
tests assert and the rollout benchmark reports.

Under wrk's counted load through the balancer (``harness.load.Counted``: every request sent ends answered or
unanswered, none is cut off when the load stops): ``rollout_under_load`` replaces each replica's model file in
turn, one replica first getting a corrupt copy (the new file cut in half), which it must refuse while keeping its
old model; ``kill_under_load`` runs ``podman kill`` on one replica, and ``revive`` starts it again. The load
starts before the first swap or the kill and ends only once the rollout is done or HAProxy has marked the
killed replica DOWN, plus ``settle_s`` (and not before its minimum): however fast or slow the machine, the
load covers the whole rollout and the whole detection. Both return their figures: wrk's counts (sent, failed,
unanswered, the answers' bodies by model), each replica's model at the end (its /info on its own port),
readiness sampled on every replica's own port and in HAProxy's stats socket, and HAProxy's log read for failed
requests, client aborts, replays and requests sent to a server marked DOWN.
Needs what ``cifar10_pipeline.deploy.replicas`` needs (root, podman, the CPU image, HAProxy) and wrk.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cifar10_pipeline.deploy.replicas import haproxy, podman, stack
from cifar10_pipeline.deploy.replicas.stack import Stack
from harness.load import Counted

WATCH_PERIOD_S = 0.2  # how often readiness is sampled during the load
POLL_S = 0.05  # how often HAProxy's view of the killed replica is read
MAX_LISTED = 20  # failed requests listed one by one in the figures
# an answer later than this fails, and the load's stop waits this long for the requests still open: a replica
# answers a small upload in milliseconds, a contended 2-core machine in a few seconds
REQUEST_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Counts:
    """How much load, and how long it lasts around the rollout and the kill."""

    concurrency: int  # wrk's connections to the balancer
    settle_s: float  # load before the first swap (or the kill), and after the last swap (or the replica marked DOWN)
    rollout_load_s: float  # the rollout's load lasts at least this long
    kill_load_s: float  # the kill's load lasts at least this long


class Watch:
    """Samples every replica's /readyz (on its own port) and HAProxy's view of it until stopped: how often a
    replica was seen not ready, and not UP in HAProxy, and when the first and the last sample were taken."""

    def __init__(self, running: Stack):
        self.not_ready = {r.name: 0 for r in running.replicas}
        self.not_up = {r.name: 0 for r in running.replicas}
        self.samples = 0
        self.first: float | None = None  # epoch seconds of the first sample's start
        self.last: float | None = None  # and of the last one's end
        self._stop = threading.Event()

        def run():
            while not self._stop.wait(WATCH_PERIOD_S):
                self.first = self.first or time.time()
                servers = haproxy.server_stats(running.stats_socket)
                for replica in running.replicas:
                    self.not_ready[replica.name] += stack.get(f"{replica.url}/readyz", timeout=2)[0] != 200
                    self.not_up[replica.name] += servers[replica.name]["status"] != "UP"
                self.samples += 1
                self.last = time.time()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def covered(self, start: float, end: float) -> bool:
        """Whether sampling began before ``start`` and went on after ``end`` (epoch seconds)."""
        return self.first is not None and self.last is not None and self.first <= start and self.last >= end


def closed_before_request(request: haproxy.Request) -> bool:
    """A connection that ended before a whole request arrived (HAProxy logs it as a 400 with no server and the
    termination code "CR"): wrk opens one when it starts, to check the address, and closes it unused. A request
    wrk gave up on mid-body would be logged the same way, and wrk's own count has it as unanswered."""
    return request.server == "<NOSRV>" and request.termination == "CR"


def aborted_by_client(request: haproxy.Request) -> bool:
    """The client closed its connection before its request was answered (HAProxy's termination code "C."), a
    connection without a request aside. The counted load never does: each is one wrk gave up on, so it fails."""
    return request.termination.startswith("C") and not closed_before_request(request)


def cut_by_server(request: haproxy.Request) -> bool:
    """The replica closed the connection in the middle of its answer (HAProxy's termination code "SD"): HAProxy
    had forwarded the head, so it logs the head's status, a 200 too, but the client got half a body."""
    return request.termination.startswith("SD")


def failed(request: haproxy.Request) -> bool:
    """A request the client did not get a good answer to: a 5xx, no response, an answer cut by the replica, or
    given up by the client."""
    return not closed_before_request(request) and (request.status >= 500 or request.status < 0
                                                    or cut_by_server(request) or aborted_by_client(request))


def failure(request: haproxy.Request, since: float) -> dict:
    """A failed request as the figures list it: when (seconds after ``since``, epoch seconds), where, how."""
    return {"at_s": round(request.accepted - since, 3), "server": request.server, "status": request.status,
            "termination": request.termination, "retries": request.retries, "redispatched": request.redispatched}


def replayed_elsewhere(request: haproxy.Request, victim: str) -> bool:
    """A request HAProxy sent again to another replica (its log's "+" on the retries: redispatched) that a
    replica other than ``victim`` answered."""
    return request.redispatched and request.server != victim


def retried_same_server(request: haproxy.Request) -> bool:
    """A request HAProxy retried without redispatching it: on the server it first chose."""
    return request.retries > 0 and not request.redispatched


def requests_between(running: Stack, start: float,
                     end: float) -> tuple[list[haproxy.Request], list[haproxy.Transition]]:
    requests, transitions = haproxy.read_log(running.haproxy_log)
    return [r for r in requests if start <= r.accepted <= end], [t for t in transitions if start <= t.at <= end]


def routed_while_down(requests: list[haproxy.Request], transitions: list[haproxy.Transition], end: float) -> int:
    """Requests HAProxy sent to a server while that server was marked DOWN."""
    down = {name: haproxy.down_intervals(transitions, name, end) for name in {r.server for r in requests}}
    return sum(any(a <= r.accepted < b for a, b in down[r.server]) for r in requests)


def answers_by_model(bodies: list[dict], known: dict[str, str]) -> dict[str, int]:
    """The counted load's 200 answers by the model that gave them: ``known`` maps a model id to its name
    ("old", "new"); an answer naming another model, or no model (not /predict's JSON), counts as "other"."""
    counts: Counter = Counter()
    for tally in bodies:
        if tally["status"] != 200:
            continue
        try:
            model_id = json.loads(tally["body"]).get("model_id")
        except (ValueError, AttributeError):
            model_id = None
        counts[known.get(model_id, "other")] += tally["count"]
    return {name: counts[name] for name in [*known.values(), "other"]}


def load_summary(result: dict) -> dict:
    """The figures of a counted load that both scenarios report."""
    return {key: result[key] for key in ("sent", "requests", "failed", "unanswered", "open_at_stop", "timeout_s",
                                         "errors", "seconds", "p50_ms", "p99_ms")}


def rollout_under_load(running: Stack, new_model: Path, corrupt_replica: str, body: Path, counts: Counts) -> dict:
    """Roll ``new_model`` through the replicas under load, ``corrupt_replica`` getting a corrupt copy first."""
    data = new_model.read_bytes()
    new_id = stack.sha256(new_model)
    old_ids = {r.name: stack.info(r)["model_id"] for r in running.replicas}
    # the longest the rollout can take: each file's outcome within the swap timeout (roll_replica)
    longest = counts.settle_s + (len(running.replicas) + 1) * stack.SWAP_TIMEOUT_S
    watch = Watch(running)
    load = Counted(running.port, body, counts.concurrency, timeout_s=REQUEST_TIMEOUT_S,
                   max_s=max(counts.rollout_load_s, longest + counts.settle_s))
    time.sleep(counts.settle_s)
    steps, rollout_started = [], time.time()
    for replica in running.replicas:
        if replica.name == corrupt_replica:
            steps.append({"file": "corrupt", **stack.roll_replica(replica, data[: len(data) // 2]).__dict__})
        steps.append({"file": "new", **stack.roll_replica(replica, data).__dict__})
    rollout_ended = time.time()
    loaded_through = load.running()  # wrk still sending: it stops only when told, so the load covered the rollout
    time.sleep(max(counts.settle_s, load.started + counts.rollout_load_s - time.time()))
    result = load.stop()
    watch.stop()
    load_ended = time.time()
    requests, transitions = requests_between(running, load.started, load_ended)
    corrupt = next(s for s in steps if s["file"] == "corrupt")
    final = {r.name: stack.info(r)["model_id"] for r in running.replicas}
    old_id = next(iter(old_ids.values()))
    return {
        "replicas": len(running.replicas),
        "concurrency": counts.concurrency,
        **load_summary(result),
        "load_s": load_ended - load.started,
        "rollout_s": rollout_ended - rollout_started,
        "load_before_s": rollout_started - load.started,
        "load_after_s": result["stopped_at"] - rollout_ended,
        # the load ran from before the first swap to after the last: a rollout that outlasts it fails
        "rollout_under_load": loaded_through and load.started < rollout_started
                              and result["stopped_at"] > rollout_ended,
        "answers_by_model": answers_by_model(result["bodies"], {old_id: "old", new_id: "new"}),
        "steps": steps,
        "corrupt_refused": (not corrupt["swapped"] and corrupt["model_id"] == old_ids[corrupt_replica]
                            and bool(corrupt["refused"])),
        "corrupt_reason": corrupt["refused"],
        "old_model_id": old_id,
        "new_model_id": new_id,
        "final_model_ids": final,
        "all_on_new_model": all(model_id == new_id for model_id in final.values()),
        "requests_by_replica": {r.name: sum(q.server == r.name for q in requests) for r in running.replicas},
        "balancer_failed": sum(failed(q) for q in requests),
        "balancer_failures": [failure(q, rollout_started) for q in requests if failed(q)][:MAX_LISTED],
        "client_aborted": sum(aborted_by_client(q) for q in requests),
        "closed_before_request": sum(closed_before_request(q) for q in requests),
        "readiness_samples": watch.samples,
        "readiness_covered_rollout": watch.covered(rollout_started, rollout_ended),
        "not_ready_samples": watch.not_ready,
        "not_up_samples": watch.not_up,
        "down_transitions": len([t for t in transitions if t.state == "DOWN"]),
        "routed_to_down_replica": routed_while_down(requests, transitions, load_ended),
    }


def podman_time(stamp: str) -> float:
    """A time as podman writes it (``2026-12-04T16:50:01.123456789Z``, or an offset for the Z, or fewer digits)
    in epoch seconds: nanoseconds cut to the microseconds Python reads."""
    stamp = stamp.strip().replace("Z", "+00:00")
    date, dot, rest = stamp.partition(".")
    if not dot:
        return datetime.fromisoformat(stamp).timestamp()
    digits = rest[:len(rest) - len(rest.lstrip("0123456789"))]
    return datetime.fromisoformat(f"{date}.{digits[:6].ljust(6, '0')}{rest[len(digits):]}").timestamp()


def exited_at(container: str) -> float | None:
    """When the container's process ended, as podman recorded it (epoch seconds); None while it runs."""
    state = json.loads(podman.podman("inspect", "--format", "{{json .State}}", container).stdout)
    return None if state.get("Running", True) else podman_time(state["FinishedAt"])


def marked_down_since(running: Stack, victim: str, since: float, timeout_s: float) -> float | None:
    """When HAProxy's log says it marked ``victim`` DOWN, at or after ``since`` (epoch seconds), waiting up to
    ``timeout_s`` for it; None if it did not."""
    deadline = time.monotonic() + timeout_s
    while True:
        _, transitions = haproxy.read_log(running.haproxy_log)
        down = [t.at for t in transitions if t.server == victim and t.state == "DOWN" and t.at >= since]
        if down or time.monotonic() > deadline:
            return down[0] if down else None
        time.sleep(POLL_S)


def kill_under_load(running: Stack, victim: str, body: Path, counts: Counts) -> dict:
    """``podman kill`` the replica ``victim`` ``counts.settle_s`` into a counted load that lasts until HAProxy
    marked it DOWN and ``counts.settle_s`` more (at least ``counts.kill_load_s`` in all)."""
    replica = running.replica(victim)
    window = running.checks.detection_window_s()
    # however slow the machine, HAProxy's checks run on its own timers: it marks the replica DOWN within the
    # window; waiting four windows tells a missed detection from a late one
    load = Counted(running.port, body, counts.concurrency, timeout_s=REQUEST_TIMEOUT_S,
                   max_s=max(counts.kill_load_s, 2 * counts.settle_s + 4 * window + 120))
    time.sleep(counts.settle_s)
    kill_called = time.time()
    podman.podman("kill", replica.container)
    # the moment the replica died, not when podman was asked: on a busy machine podman takes its time
    killed_at = exited_at(replica.container) or time.time()
    marked_down = marked_down_since(running, victim, kill_called, timeout_s=4 * window)
    time.sleep(max(counts.settle_s, load.started + counts.kill_load_s - time.time()))
    result = load.stop()
    load_ended = time.time()
    requests, transitions = requests_between(running, load.started, load_ended)
    after_kill = [r for r in requests if r.accepted >= killed_at]
    in_window = [r for r in after_kill if r.accepted < killed_at + window]
    return {
        "replicas": len(running.replicas),
        "concurrency": counts.concurrency,
        "victim": victim,
        "upload_bytes": body.stat().st_size,
        "check": running.checks.__dict__,
        "detection_window_s": window,
        "kill_took_s": killed_at - kill_called,
        "detected_after_s": None if marked_down is None else marked_down - killed_at,
        **load_summary(result),
        "load_s": load_ended - load.started,
        "balancer_failed": sum(failed(r) for r in requests),
        "balancer_failed_before_window": sum(failed(r) for r in in_window),
        "balancer_failed_after_window": sum(failed(r) for r in after_kill if r.accepted >= killed_at + window),
        "client_aborted": sum(aborted_by_client(r) for r in requests),
        "closed_before_request": sum(closed_before_request(r) for r in requests),
        "balancer_failures": [failure(r, killed_at) for r in requests if failed(r)][:MAX_LISTED],
        "replayed_on_another_replica": sum(replayed_elsewhere(r, victim) for r in requests),
        "retried_on_same_server": sum(retried_same_server(r) for r in requests),
        "sent_to_victim_after_marked_down": sum(r.server == victim for r in after_kill
                                                if marked_down is not None and r.accepted >= marked_down),
        "requests_after_kill": len(after_kill),
        "requests_in_window": len(in_window),
    }


def revive(running: Stack, name: str) -> None:
    """Start the killed replica ``name`` again and return once it is ready and HAProxy's checks passed on it."""
    replica = running.replica(name)
    podman.podman("start", replica.container)
    stack.wait_ready((replica,))
    stack.wait_checked(running)
