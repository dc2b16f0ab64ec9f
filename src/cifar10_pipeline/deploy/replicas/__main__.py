"""python -m cifar10_pipeline.deploy.replicas {up,down,rollout,status}: replicas of the CPU image behind HAProxy (see --help)."""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path

from cifar10_pipeline.deploy.replicas import haproxy, podman, stack
from cifar10_pipeline.deploy.replicas.haproxy import Checks

DEFAULT_STATE = Path("build/replicas")
EPILOG = """\
examples:
  python -m cifar10_pipeline.deploy.replicas up --replicas 2 --model models/model.onnx --port 8000   # Ctrl-C stops and removes all
  python -m cifar10_pipeline.deploy.replicas up --detach ...; python -m cifar10_pipeline.deploy.replicas down         # or in the background
  python -m cifar10_pipeline.deploy.replicas rollout --model models/new.onnx                          # replica by replica
  python -m cifar10_pipeline.deploy.replicas status
The CPU image comes from `make image` (podman storage in CONTAINERS_WORK, default /tmp/containers-ci)."""


def _up(args: argparse.Namespace) -> int:
    checks = Checks(args.check_inter_ms, args.check_fall, args.check_rise, args.check_timeout_ms)
    if not args.detach:
        # Ctrl-C, or make's or a supervisor's SIGTERM, stops and cleans up, even where the shell started this
        # process with SIGINT ignored (a background job)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    running = stack.up(args.model, replicas=args.replicas, port=args.port, state_dir=args.state_dir,
                       image=args.image, checks=checks)
    print(f"serving on {running.url} (POST /predict, /v2/...); HAProxy stats http://127.0.0.1:{running.stats_port}/ "
          f"and /metrics; a dead replica stops getting requests within {checks.detection_window_s():g} s")
    print(f"replica model files: {', '.join(str(r.model_path) for r in running.replicas)}")
    if args.detach:
        print(f"stop with: python -m cifar10_pipeline.deploy.replicas down --state-dir {args.state_dir}")
        return 0
    print("Ctrl-C stops HAProxy and removes the containers", flush=True)
    try:
        while True:
            time.sleep(1)
            if not haproxy.running(running.haproxy_pid, running.haproxy_config):
                print(f"HAProxy exited; its log: {running.haproxy_log}", file=sys.stderr)
                return 1
    except KeyboardInterrupt:
        return 0
    finally:
        stack.down(args.state_dir)


def _down(args: argparse.Namespace) -> int:
    stack.down(args.state_dir)
    return 0


def _rollout(args: argparse.Namespace) -> int:
    running = stack.load(args.state_dir)
    try:
        stack.rollout(running, args.model)
    except stack.RolloutRefused as e:
        print(f"rollout stopped: {e}", file=sys.stderr)
        return 1
    print(f"every replica serves {stack.sha256(args.model)[:12]}")
    return 0


def _status(args: argparse.Namespace) -> int:
    running = stack.load(args.state_dir)
    servers = haproxy.server_stats(running.stats_socket)
    print(f"balancer {running.url}, HAProxy pid {running.haproxy_pid}")
    for replica in running.replicas:
        row = servers.get(replica.name, {})
        try:
            model = stack.info(replica)["model_id"][:12]
        except RuntimeError as e:
            model = f"unreachable ({e})"
        print(f"  {replica.name}  127.0.0.1:{replica.port}  HAProxy: {row.get('status', '?')}, "
              f"{row.get('stot', '?')} requests  model {model}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cifar10_pipeline.deploy.replicas", description=__doc__.split(":", 1)[1].strip(),
                                     epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--state-dir", type=Path, default=DEFAULT_STATE,
                        help=f"the stack's state, HAProxy's files and the replicas' model folders "
                             f"(default {DEFAULT_STATE})")
    commands = parser.add_subparsers(dest="command", required=True)

    up = commands.add_parser("up", help="start the replicas, then HAProxy; in the foreground unless --detach")
    up.add_argument("--model", type=Path, required=True, help="the ONNX file every replica starts with")
    up.add_argument("--replicas", type=int, default=2, help="serving containers (default 2)")
    up.add_argument("--port", type=int, default=8000,
                    help="the balancer's port on 127.0.0.1; replica i gets PORT+i, HAProxy's stats PORT+N+1 "
                         "(default 8000)")
    up.add_argument("--image", default=podman.CPU_IMAGE, help=f"the serving image (default {podman.CPU_IMAGE})")
    up.add_argument("--detach", action="store_true", help="return once everything is ready; stop with `down`")
    defaults = Checks()
    up.add_argument("--check-inter-ms", type=int, default=defaults.inter_ms, help="health check period (ms)")
    up.add_argument("--check-fall", type=int, default=defaults.fall, help="failed checks that take a replica out")
    up.add_argument("--check-rise", type=int, default=defaults.rise, help="passed checks that bring it back")
    up.add_argument("--check-timeout-ms", type=int, default=defaults.timeout_ms, help="one check's time limit (ms)")
    up.set_defaults(run=_up)

    commands.add_parser("down", help="stop HAProxy, remove the containers").set_defaults(run=_down)
    rollout = commands.add_parser("rollout", help="replace the model replica by replica, each checked through its "
                                                  "own port; stops at the first replica that refuses the file")
    rollout.add_argument("--model", type=Path, required=True, help="the new ONNX file")
    rollout.set_defaults(run=_rollout)
    commands.add_parser("status", help="each replica's HAProxy state and model").set_defaults(run=_status)

    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except (RuntimeError, FileNotFoundError, ValueError, TimeoutError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # while starting: what was started is removed already
        return 130


if __name__ == "__main__":
    sys.exit(main())
