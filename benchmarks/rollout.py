"""Rollout benchmark: a new model rolled through replicas behind HAProxy under load, and a replica killed under load.

``python -m benchmarks.rollout --out bench-results`` (``make bench-rollout``; ``--smoke``: shorter load).
Needs root, podman with the CPU image (``make image``), HAProxy and wrk (``make system-deps``). All traffic goes to
127.0.0.1: wrk to the balancer, the checks to each replica's own port.

Every load is counted (``harness.load.Counted``): wrk counts each request it sends and each answer it reads, and
when the load stops it sends nothing more and waits for the requests still open (up to the request timeout), so
"0 failed" means every request sent got a 2xx answer in time; nothing is cut off at the stop.

- rollout: ``--replicas`` containers (``deploy.replicas``) serve the old model while wrk POSTs a small PNG to
  /predict through HAProxy; the new model's file replaces each replica's file in turn, and one replica is first
  given a corrupt copy (the new file cut in half), which it must refuse, keeping its old model, before the good
  file. The load starts before the first swap and stops only after the last one (a rollout outlasting its load
  fails). Figures: failed requests of all sent (answers >= 400, late answers, requests never answered, refused
  connections), which model answered (each answer's model id), the model each replica serves at the end (its
  /info, through its own port), the corrupt file refused, and readiness: every replica's /readyz polled on its own
  port during the load, the servers' states in HAProxy's stats socket, and HAProxy's log (no request may reach a
  server while it is marked DOWN; client aborts counted).
- kill, twice: under the same load, ``podman kill`` one replica, once with the small PNG and once with an upload
  over HAProxy's default 16 kB buffer (this config buffers up to 1 MiB, so it can replay it too); the replica is
  started again between the two. The goal is 0 failed of every request wrk sent; HAProxy's log says when it marked
  the replica DOWN (against the detection window its check settings allow, from the moment the container
  died), which requests failed at the balancer within that window and after it, and which were replayed on
  another replica (the log's "+": redispatched, answered by a survivor) or retried on the same one.

Both scenarios are ``harness.rollout``'s (the replica tests run them too); this benchmark sets up the stack, judges
the figures against its goals (exit status 1 when one is missed) and writes them: ``rollout.json`` and
``rollout.md`` in ``--out`` (and, on full runs, BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from cifar10_pipeline.deploy.replicas import haproxy, stack
from harness.load import failures
from harness.models import make_models
from harness.report import machine, write_report
from harness.rollout import Counts, kill_under_load, revive, rollout_under_load

FULL = Counts(concurrency=16, settle_s=3, rollout_load_s=40, kill_load_s=20)
SMOKE = Counts(concurrency=4, settle_s=2, rollout_load_s=10, kill_load_s=6)
SMALL_SIDE, LARGE_SIDE = 32, 96  # uploads: PNGs of random pixels, about 3 kB and 28 kB
LARGE_OVER_BYTES = 16 * 1024  # HAProxy's default buffer: bodies over it need this config's larger one to be replayed


def kill_verdicts(kill: dict, label: str) -> list[tuple[str, str, bool]]:
    return [
        (f"killed replica drained within the detection window ({kill['detection_window_s']:g} s), {label}",
         "never" if kill["detected_after_s"] is None else f"after {kill['detected_after_s']:.2f} s",
         kill["detected_after_s"] is not None and kill["detected_after_s"] <= kill["detection_window_s"]),
        (f"0 failed of every request sent when a replica is killed, {label}", failures(kill),
         kill["failed"] == 0 and kill["sent"] > 0),
    ]


def verdicts(report: dict) -> list[tuple[str, str, bool]]:
    """(goal, measured, met) for each figure the issue sets."""
    roll, kill, large = report["rollout"], report["kill"], report["kill_large"]
    return [
        ("0 failed of every request sent during the rollout", failures(roll), roll["failed"] == 0 and roll["sent"] > 0),
        ("the load covers the whole rollout (a rollout that outlasts it fails)",
         f"load {roll['load_before_s']:.1f} s before the first swap, {roll['load_after_s']:.1f} s after the last",
         roll["rollout_under_load"]),
        ("every answer from the old or the new model",
         f"old {roll['answers_by_model']['old']}, new {roll['answers_by_model']['new']}, "
         f"other {roll['answers_by_model']['other']}", roll["answers_by_model"]["other"] == 0),
        ("every replica ends on the new model",
         f"{sum(m == roll['new_model_id'] for m in roll['final_model_ids'].values())} of {roll['replicas']}",
         roll["all_on_new_model"]),
        ("the corrupt file refused, its replica keeps the old model", str(roll["corrupt_refused"]),
         roll["corrupt_refused"]),
        ("no request routed to a replica that is not ready",
         (f"{roll['routed_to_down_replica']} routed to a DOWN server; not-ready samples "
         f"{sum(roll['not_ready_samples'].values())} of {roll['readiness_samples']}"),
         roll["routed_to_down_replica"] == 0 and not any(roll["not_ready_samples"].values())
         and roll["readiness_covered_rollout"]),
        *kill_verdicts(kill, f"{kill['upload_bytes']}-byte upload"),
        *kill_verdicts(large, f"{large['upload_bytes']}-byte upload"),
    ]


def kill_text(kill: dict) -> str:
    return (f"Kill with a {kill['upload_bytes']}-byte upload: `podman kill` of {kill['victim']} under load (the "
            f"container ended {kill['kill_took_s']:.2f} s after podman was asked); HAProxy marked it DOWN "
            + ("never" if kill["detected_after_s"] is None else f"{kill['detected_after_s']:.2f} s after it ended")
            + f" (window {kill['detection_window_s']:g} s = fall x inter + timeout); {kill['sent']} requests sent in "
            f"{kill['load_s']:.1f} s (p50 {kill['p50_ms']:.1f} ms, p99 {kill['p99_ms']:.1f} ms), {kill['failed']} "
            f"failed, {kill['unanswered']} unanswered ({kill['open_at_stop']} were open when the load stopped and "
            f"waited for); at the balancer {kill['balancer_failed']} failed in all, "
            f"{kill['balancer_failed_before_window']} of them within the window ({kill['requests_in_window']} "
            f"requests) and {kill['balancer_failed_after_window']} after it, {kill['client_aborted']} client aborts "
            f"(connections closed before a request, wrk's address check: {kill['closed_before_request']}); "
            f"{kill['replayed_on_another_replica']} requests replayed on another replica (redispatched, answered "
            f"by a survivor: option http-buffer-request, retry-on conn-failure empty-response junk-response 503, "
            f"option redispatch), {kill['retried_on_same_server']} retried on the same replica; "
            f"{kill['sent_to_victim_after_marked_down']} sent to it once marked DOWN."
            + "".join(f" Failed at the balancer {f['at_s']:+.2f} s from the kill: {f['server']}, status {f['status']}, "
                      f"termination {f['termination']}, retries {'+' if f['redispatched'] else ''}{f['retries']}."
                      for f in kill["balancer_failures"]))


def markdown(report: dict) -> str:
    roll, kill, large = report["rollout"], report["kill"], report["kill_large"]
    lines = [
        f"# Rollout and replica kill behind HAProxy ({report['machine']}{', smoke counts' if report['smoke'] else ''})",
        "",
        (f"{roll['replicas']} replicas of the CPU image (podman), each on its own 127.0.0.1 port, behind HAProxy "
        f"{report['haproxy']} health-checking /readyz every {kill['check']['inter_ms']} ms (fall "
        f"{kill['check']['fall']}, rise {kill['check']['rise']}, timeout {kill['check']['timeout_ms']} ms); wrk "
        f"POSTs a {report['upload_bytes']}-byte PNG to /predict over {roll['concurrency']} connections (and a "
        f"{large['upload_bytes']}-byte one in the second kill); model: {report['model']}. Every request wrk sends "
        f"is counted: when a load stops, nothing more is sent and the open requests are waited for (up to "
        f"{roll['timeout_s']:g} s, the request timeout), so a failure count is of every request sent. Load average "
        f"{report['load_average']:.1f} when it started (other work shares the CPUs: latencies are the machine's, "
        "the failure counts are the figures)."),
        "",
        "| goal | measured | met |",
        "| --- | --- | --- |",
        *(f"| {goal} | {measured} | {'yes' if met else '**no**'} |" for goal, measured, met in verdicts(report)),
        "",
        (f"Rollout: {roll['sent']} requests sent in {roll['load_s']:.1f} s (p50 {roll['p50_ms']:.1f} ms, p99 "
        f"{roll['p99_ms']:.1f} ms), {roll['failed']} failed, {roll['unanswered']} unanswered "
        f"({roll['open_at_stop']} open when the load stopped, waited for); the rollout took {roll['rollout_s']:.1f} s "
        f"inside the load; at the balancer {roll['balancer_failed']} failed, {roll['client_aborted']} client aborts "
        f"(connections closed before a request, wrk's address check: {roll['closed_before_request']}); "
        f"requests by replica: {', '.join(f'{k} {v}' for k, v in roll['requests_by_replica'].items())}."),
        "",
        "| replica | file | served after | swapped | refused because |",
        "| --- | --- | ---: | --- | --- |",
    ]
    for step in roll["steps"]:
        reason = step["refused"].splitlines()[-1].strip(" -")[:100] if step["refused"] else ""  # the last cause
        lines.append(f"| {step['replica']} | {step['file']} | {step['seconds']:.1f} s | "
                     f"{'yes' if step['swapped'] else 'no'} | {reason} |")
    lines += ["", kill_text(kill), "", kill_text(large), ""]
    return "\n".join(lines)


def png(path: Path, side: int) -> Path:
    """A PNG of seeded random pixels, ``side`` x ``side`` (random pixels do not compress: about 3 bytes each)."""
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (side, side, 3), dtype=np.uint8)).save(path, "PNG")
    return path


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
        body, large = png(workdir / "upload.png", SMALL_SIDE), png(workdir / "large.png", LARGE_SIDE)
        assert large.stat().st_size > LARGE_OVER_BYTES
        running = stack.up(old_model, replicas=args.replicas, port=stack.free_base_port(args.replicas),
                           state_dir=workdir / "stack", log=lambda line: print(line, file=sys.stderr, flush=True))
        try:
            names = [r.name for r in running.replicas]
            print("rollout under load", file=sys.stderr, flush=True)
            rollout = rollout_under_load(running, new_model, names[1], body, counts)
            print("kill under load", file=sys.stderr, flush=True)
            kill = kill_under_load(running, names[-1], body, counts)
            revive(running, names[-1])
            print("kill under load, large upload", file=sys.stderr, flush=True)
            kill_large = kill_under_load(running, names[-1], large, counts)
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
            "kill_large": kill_large,
        }
    write_report(args.out, "rollout", report, markdown(report), record=not args.smoke, target="make bench-rollout")
    return 0 if all(met for _, _, met in verdicts(report)) else 1


if __name__ == "__main__":
    sys.exit(main())
