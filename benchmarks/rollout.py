"""Rollout benchmark: a new model rolled through replicas behind HAProxy under load, and a replica killed under load.

``python -m benchmarks.rollout --out bench-results`` (``make bench-rollout``; ``--smoke``: shorter load).
Needs root, podman with the CPU image (``make image``), HAProxy and wrk (``make system-deps``). All traffic goes to
127.0.0.1: wrk to the balancer, the checks to each replica's own published port.

- rollout: ``--replicas`` containers (``deploy.replicas``) serve the old model while wrk POSTs a small PNG to
  /predict through HAProxy; the new model's file replaces each replica's file in turn, and one replica is first
  given a corrupt copy (the new file cut in half), which it must refuse, keeping its old model, before the good
  file. Figures: failed requests (wrk's count: non-2xx answers and socket errors), the model each replica serves
  at the end (its /info, through its own port), the corrupt file refused, and readiness: every replica's /readyz
  polled on its own port during the load, the servers' states in HAProxy's stats socket, and HAProxy's log (no
  request may reach a server while it is marked DOWN).
- kill: under the same load, ``podman kill`` one replica; HAProxy's log says when it marked it DOWN (against the
  detection window its check settings allow) and which requests failed, before and after that window.

Figures go to ``--out`` as ``rollout.json`` and ``rollout.md`` (and, on full runs, BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from benchmarks.report import machine, write_report
from benchmarks.service import WRK_SCRIPT, make_models, wrk
from cifar10_pipeline.deploy.replicas import haproxy, podman, stack
from cifar10_pipeline.deploy.replicas.stack import Stack

WATCH_PERIOD_S = 0.2  # how often readiness is sampled during the load


@dataclass(frozen=True)
class Counts:
    concurrency: int  # wrk's connections to the balancer
    settle_s: float  # load before the first file is replaced, or before the kill
    rollout_load_s: int  # wrk's run during the rollout: long enough to cover it with load on both sides
    kill_load_s: int  # wrk's run around the kill; the kill comes settle_s after its start


FULL = Counts(concurrency=16, settle_s=3, rollout_load_s=40, kill_load_s=20)
SMOKE = Counts(concurrency=4, settle_s=2, rollout_load_s=20, kill_load_s=10)


class Load:
    """wrk against the balancer for ``seconds``, in a thread; wrk stops by itself at the end of its duration."""

    def __init__(self, port: int, workdir: Path, body: Path, concurrency: int, seconds: int):
        script = workdir / "post.lua"
        script.write_text(WRK_SCRIPT)
        self.result: dict = {}
        self.error: Exception | None = None
        self.started = time.time()
        self.seconds = seconds

        def run():
            try:
                self.result.update(wrk(port, script, body, concurrency, seconds))
            except Exception as e:  # reported by join()
                self.error = e

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()

    def join(self) -> dict:
        self._thread.join(timeout=self.seconds + 90)  # wrk's own time limit (service.wrk) ends it before this
        if not self.result:
            raise RuntimeError(f"wrk gave no result: {self.error}")
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


def rollout_under_load(running: Stack, new_model: Path, corrupt_replica: str, body: Path, workdir: Path,
                       counts: Counts) -> dict:
    """Roll ``new_model`` through the replicas under load, ``corrupt_replica`` getting a corrupt copy first."""
    data = new_model.read_bytes()
    new_id = stack.sha256(new_model)
    old_ids = {r.name: stack.info(r)["model_id"] for r in running.replicas}
    watch = Watch(running, max_s=counts.rollout_load_s + 30)
    load = Load(running.port, workdir, body, counts.concurrency, counts.rollout_load_s)
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


def kill_under_load(running: Stack, victim: str, body: Path, workdir: Path, counts: Counts) -> dict:
    """``podman kill`` the replica ``victim`` ``counts.settle_s`` into a load of ``counts.kill_load_s``."""
    replica = running.replica(victim)
    window = running.checks.detection_window_s()
    load = Load(running.port, workdir, body, counts.concurrency, counts.kill_load_s)
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
        "balancer_failed_before_window": sum(failed(r) for r in after_kill if r.accepted < killed_at + window),
        "balancer_failed_after_window": sum(failed(r) for r in after_kill if r.accepted >= killed_at + window),
        "replayed_on_another_replica": sum(r.retries > 0 for r in after_kill),
        "sent_to_victim_after_marked_down": sum(r.server == victim for r in after_kill
                                                if marked_down is not None and r.accepted >= marked_down),
        "requests_after_kill": len(after_kill),
    }


def verdicts(report: dict) -> list[tuple[str, str, bool]]:
    """(goal, measured, met) for each figure the issue sets."""
    roll, kill = report["rollout"], report["kill"]
    return [
        ("0 failed requests during the rollout", f"{roll['failed']} of {roll['requests']}", roll["failed"] == 0),
        ("every replica ends on the new model",
         f"{sum(m == roll['new_model_id'] for m in roll['final_model_ids'].values())} of {roll['replicas']}",
         roll["all_on_new_model"]),
        ("the corrupt file refused, its replica keeps the old model", str(roll["corrupt_refused"]),
         roll["corrupt_refused"]),
        ("no request routed to a replica that is not ready",
         (f"{roll['routed_to_down_replica']} routed to a DOWN server; not-ready samples "
         f"{sum(roll['not_ready_samples'].values())} of {roll['readiness_samples']}"),
         roll["routed_to_down_replica"] == 0 and not any(roll["not_ready_samples"].values())),
        (f"killed replica drained within the detection window ({kill['detection_window_s']:g} s)",
         "never" if kill["detected_after_s"] is None else f"after {kill['detected_after_s']:.2f} s",
         kill["detected_after_s"] is not None and kill["detected_after_s"] <= kill["detection_window_s"]),
        ("0 failed requests after the detection window", str(kill["balancer_failed_after_window"]),
         kill["balancer_failed_after_window"] == 0),
    ]


def markdown(report: dict) -> str:
    roll, kill = report["rollout"], report["kill"]
    lines = [
        f"# Rollout and replica kill behind HAProxy ({report['machine']}{', smoke counts' if report['smoke'] else ''})",
        "",
        (f"{roll['replicas']} replicas of the CPU image (podman), each on its own 127.0.0.1 port, behind HAProxy "
        f"{report['haproxy']} health-checking /readyz every {kill['check']['inter_ms']} ms (fall "
        f"{kill['check']['fall']}, rise {kill['check']['rise']}, timeout {kill['check']['timeout_ms']} ms); wrk "
        f"POSTs a {report['upload_bytes']}-byte PNG to /predict over {roll['concurrency']} connections; model: "
        f"{report['model']}. Load average {report['load_average']:.1f} when it started (other work shares the "
        "CPUs: latencies are the machine's, the failure counts are the figures)."),
        "",
        "| goal | measured | met |",
        "| --- | --- | --- |",
        *(f"| {goal} | {measured} | {'yes' if met else '**no**'} |" for goal, measured, met in verdicts(report)),
        "",
        (f"Rollout: {roll['requests']} requests in {roll['load_s']:.1f} s (p50 {roll['p50_ms']:.1f} ms, p99 "
        f"{roll['p99_ms']:.1f} ms), {roll['failed']} failed; the rollout took {roll['rollout_s']:.1f} s inside the "
        f"load; requests by replica: {', '.join(f'{k} {v}' for k, v in roll['requests_by_replica'].items())}."),
        "",
        "| replica | file | served after | swapped | refused because |",
        "| --- | --- | ---: | --- | --- |",
    ]
    for step in roll["steps"]:
        reason = step["refused"].splitlines()[-1].strip(" -")[:100] if step["refused"] else ""  # the last cause
        lines.append(f"| {step['replica']} | {step['file']} | {step['seconds']:.1f} s | "
                     f"{'yes' if step['swapped'] else 'no'} | {reason} |")
    lines += [
        "",
        f"Kill: `podman kill` of {kill['victim']} under load; HAProxy marked it DOWN after "
        + ("never" if kill["detected_after_s"] is None else f"{kill['detected_after_s']:.2f} s")
        + f" (window {kill['detection_window_s']:g} s = fall x inter + timeout); {kill['requests']} requests, "
        f"{kill['failed']} failed (wrk); at the balancer {kill['balancer_failed_before_window']} failed within the "
        f"window and {kill['balancer_failed_after_window']} after it; {kill['replayed_on_another_replica']} requests "
        f"replayed on another replica (retry-on conn-failure empty-response 503, option redispatch); "
        f"{kill['sent_to_victim_after_marked_down']} sent to it once marked DOWN.",
        "",
    ]
    return "\n".join(lines)


def haproxy_version() -> str:
    out = subprocess.run([haproxy.binary(), "-v"], check=True, capture_output=True, text=True).stdout
    return out.split()[2]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.rollout", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("bench-results"), help="directory for rollout.json/.md")
    parser.add_argument("--replicas", type=int, default=2, help="serving containers (default 2, at least 2)")
    parser.add_argument("--smoke", action="store_true", help="shorter load: a quick check that it runs")
    args = parser.parse_args(argv)
    if args.replicas < 2:
        parser.error("--replicas must be at least 2: one replica is killed while the others serve")
    for tool in ("wrk", "podman"):
        if shutil.which(tool) is None:
            parser.error(f"needs {tool} (make system-deps; podman: make image)")
    counts = SMOKE if args.smoke else FULL
    load_average = os.getloadavg()[0]  # over the last minute
    with tempfile.TemporaryDirectory(prefix="bench-rollout-") as tmp:
        workdir = Path(tmp)
        # two exports of the project's CNN with different random weights: the old model and the new one
        (workdir / "old").mkdir()
        (workdir / "new").mkdir()
        old_model = make_models(workdir / "old", seed=0)[1]
        new_model = make_models(workdir / "new", seed=1)[1]
        body = workdir / "upload.png"
        Image.fromarray(np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(body, "PNG")
        running = stack.up(old_model, replicas=args.replicas, port=stack.free_base_port(args.replicas),
                           state_dir=workdir / "stack", log=lambda line: print(line, file=sys.stderr, flush=True))
        try:
            names = [r.name for r in running.replicas]
            print("rollout under load", file=sys.stderr, flush=True)
            rollout = rollout_under_load(running, new_model, names[1], body, workdir, counts)
            print("kill under load", file=sys.stderr, flush=True)
            kill = kill_under_load(running, names[-1], body, workdir, counts)
        finally:
            stack.down(workdir / "stack", log=lambda line: print(line, file=sys.stderr, flush=True))
        report = {
            "smoke": args.smoke,
            "machine": machine(),
            "haproxy": haproxy_version(),
            "load_average": load_average,
            "model": "the project's CNN for CIFAR-10, random weights (seeds 0 and 1), exported with parity",
            "upload_bytes": body.stat().st_size,
            "rollout": rollout,
            "kill": kill,
        }
    write_report(args.out, "rollout", report, markdown(report), record=not args.smoke)
    return 0 if all(met for _, _, met in verdicts(report)) else 1


if __name__ == "__main__":
    sys.exit(main())
