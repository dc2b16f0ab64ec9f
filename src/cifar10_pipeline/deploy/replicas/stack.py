"""One stack of replicas: start it (containers, then HAProxy), find it again from its state file, roll a new
model through it replica by replica, and take it down.

Everything listens on 127.0.0.1 only: the balancer on ``port``, replica i on ``port + i``, HAProxy's stats page
and Prometheus metrics on ``port + replicas + 1``. HAProxy's backends are the replicas' loopback ports, never
the containers' own addresses.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import socket
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from cifar10_pipeline.deploy.replicas import haproxy, podman
from cifar10_pipeline.deploy.replicas.haproxy import Checks

MODEL_FILE = "model.onnx"  # in each replica's folder, mounted read-only at /models (the image's model path)
STATE_FILE = "state.json"
READY_TIMEOUT_S = 120.0  # a replica starts in seconds; a slow machine under load may take tens
SWAP_TIMEOUT_S = 60.0  # the service polls its file every second and loads a new one in well under a second
CONTAINER_LABEL = "cifar10.replicas"  # on every container of a stack: its state folder


@dataclass(frozen=True)
class Replica:
    name: str  # HAProxy's name for it: replica-1, replica-2, ...
    container: str
    port: int  # published on 127.0.0.1
    model_dir: str  # host folder mounted at /models

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def model_path(self) -> Path:
        return Path(self.model_dir) / MODEL_FILE


@dataclass(frozen=True)
class Stack:
    state_dir: str
    port: int
    stats_port: int
    image: str
    haproxy_pid: int
    checks: Checks
    replicas: tuple[Replica, ...] = field(default_factory=tuple)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def stats_socket(self) -> Path:
        return Path(self.state_dir) / "haproxy.sock"

    @property
    def haproxy_config(self) -> Path:
        return Path(self.state_dir) / "haproxy.cfg"

    @property
    def haproxy_log(self) -> Path:
        return Path(self.state_dir) / "haproxy.log"

    def replica(self, name: str) -> Replica:
        return next(r for r in self.replicas if r.name == name)

    def save(self) -> None:
        (Path(self.state_dir) / STATE_FILE).write_text(json.dumps(asdict(self), indent=2) + "\n")


class RolloutRefused(RuntimeError):
    """A replica refused the new model file and keeps serving its old one."""


def load(state_dir: Path) -> Stack:
    """The stack whose state ``up`` wrote to ``state_dir``."""
    path = Path(state_dir) / STATE_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no replicas are running from {state_dir} (no {path})")
    data = json.loads(path.read_text())
    data["checks"] = Checks(**data["checks"])
    data["replicas"] = tuple(Replica(**r) for r in data["replicas"])
    return Stack(**data)


def free_base_port(replicas: int) -> int:
    """A balancer port for ``up`` such that it and the ``replicas + 1`` ports after it are free on 127.0.0.1."""
    for _ in range(100):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = s.getsockname()[1]
        if base + replicas + 1 > 65535:
            continue
        try:
            with contextlib.ExitStack() as held:
                for port in range(base, base + replicas + 2):
                    held.enter_context(socket.socket()).bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
    raise RuntimeError(f"found no {replicas + 2} free consecutive ports on 127.0.0.1")


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def install_model(data: bytes, target: Path) -> None:
    """Write ``data`` to ``target`` at once (a rename), readable by the containers' non-root user, so the
    service never sees half a file."""
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_bytes(data)
    tmp.chmod(0o644)
    tmp.replace(target)


def get(url: str, timeout: float = 5) -> tuple[int, str]:
    """GET ``url``: (status, body); (0, reason) when nothing answered."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except (urllib.error.URLError, OSError) as e:
        return 0, str(e)


def info(replica: Replica) -> dict:
    """The replica's /info, read through its own port."""
    status, body = get(f"{replica.url}/info")
    if status != 200:
        raise RuntimeError(f"{replica.name}: GET /info answered {status}: {body}")
    return json.loads(body)


def refusals(replica: Replica) -> int:
    """How many model files the replica has refused since it started (its /metrics)."""
    status, body = get(f"{replica.url}/metrics")
    m = re.search(r'^inference_model_loads_total\{result="refused"\} (\S+)$', body, re.MULTILINE)
    if status != 200 or m is None:
        raise RuntimeError(f"{replica.name}: no refused-loads count in /metrics ({status})")
    return int(float(m[1]))


def wait_ready(replicas: tuple[Replica, ...], timeout_s: float = READY_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    for replica in replicas:
        while (answer := get(f"{replica.url}/readyz", timeout=2))[0] != 200:
            if time.monotonic() > deadline:
                logs = podman.podman("logs", "--tail", "20", replica.container, check=False)
                raise RuntimeError(f"{replica.name} not ready after {timeout_s:g} s: {answer[1]}\n"
                                   f"{logs.stdout}{logs.stderr}")
            time.sleep(0.1)


def wait_checked(running: Stack) -> None:
    """Wait until HAProxy's own checks have passed on every replica (it starts them as UP but unchecked,
    shown as "UP 1/2")."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while {row["status"] for row in haproxy.server_stats(running.stats_socket).values()} != {"UP"}:
        if time.monotonic() > deadline:
            raise RuntimeError(f"HAProxy's checks did not pass on every replica in {READY_TIMEOUT_S:g} s: "
                               f"{haproxy.server_stats(running.stats_socket)}")
        time.sleep(0.05)


def up(model: Path, *, replicas: int = 2, port: int = 8000, state_dir: Path = Path("build/replicas"),
       image: str = podman.CPU_IMAGE, checks: Checks | None = None, log=print) -> Stack:
    """Start ``replicas`` containers serving a copy of ``model`` each, wait until every one is ready (so HAProxy
    never starts with a replica that is not), then HAProxy, and return once its checks passed on every replica.
    On any failure what was started is removed."""
    checks = checks or Checks()
    if replicas < 1:
        raise ValueError(f"replicas must be >= 1, got {replicas}")
    model, state_dir = Path(model), Path(state_dir).resolve()
    if not model.is_file():
        raise FileNotFoundError(f"no model file {model}")
    if (state_dir / STATE_FILE).exists():
        raise RuntimeError(f"replicas from {state_dir} are running; stop them first (python -m cifar10_pipeline.deploy.replicas "
                           f"down --state-dir {state_dir})")
    podman.require_image(image)
    state_dir.mkdir(parents=True, exist_ok=True)
    stack = Stack(str(state_dir), port, port + replicas + 1, image, 0, checks, tuple(
        Replica(f"replica-{i}", f"cifar10-replica-{port}-{i}", port + i, str(state_dir / f"replica-{i}"))
        for i in range(1, replicas + 1)))
    stack.save()  # from here on, down() can find whatever was started
    try:
        data = model.read_bytes()
        for replica in stack.replicas:
            Path(replica.model_dir).mkdir(exist_ok=True)
            Path(replica.model_dir).chmod(0o755)
            install_model(data, replica.model_path)
            # podman runs health checks from systemd timers, absent here: HAProxy's checks are the ones that count
            podman.podman("run", "-d", "--name", replica.container, "--label", f"{CONTAINER_LABEL}={state_dir}",
                          "--no-healthcheck", "-p", f"127.0.0.1:{replica.port}:8000",
                          "-v", f"{replica.model_dir}:/models:ro", image)
            log(f"started {replica.name}: container {replica.container} on 127.0.0.1:{replica.port}")
        wait_ready(stack.replicas)
        log(f"all {replicas} replicas ready")
        config = stack.haproxy_config
        config.write_text(haproxy.render_config(port, stack.stats_port, stack.stats_socket,
                                                [(r.name, r.port) for r in stack.replicas], checks))
        process = haproxy.start(config, stack.haproxy_log)
        stack = replace(stack, haproxy_pid=process.pid)
        stack.save()
        wait_checked(stack)
        log(f"HAProxy on 127.0.0.1:{port} (stats and /metrics on 127.0.0.1:{stack.stats_port}), pid {process.pid}")
        return stack
    except BaseException:
        down(state_dir, log=lambda _: None)
        raise


def down(state_dir: Path, log=print) -> None:
    """Stop HAProxy and remove the stack's containers and its state (the replicas' model folders stay)."""
    stack = load(state_dir)
    if stack.haproxy_pid and haproxy.stop(stack.haproxy_pid, stack.haproxy_config):
        log(f"stopped HAProxy (pid {stack.haproxy_pid})")
    found = podman.podman("ps", "-a", "-q", "--filter", f"label={CONTAINER_LABEL}={Path(state_dir).resolve()}")
    ids = found.stdout.split()
    if ids:
        podman.podman("rm", "-f", "-t", "5", *ids)
    log(f"removed {len(ids)} containers")
    for name in (STATE_FILE, "haproxy.sock"):
        (Path(state_dir) / name).unlink(missing_ok=True)


@dataclass(frozen=True)
class Step:
    """What one replica did with the file it was given."""

    replica: str
    model_id: str  # what it serves afterwards
    swapped: bool
    refused: str | None  # the service's reason, when it kept its old model
    seconds: float  # from the file's replacement to the replica's answer


def roll_replica(replica: Replica, data: bytes, timeout_s: float = SWAP_TIMEOUT_S) -> Step:
    """Replace the replica's model file with ``data`` and wait, through its own port, until it serves the new
    model or has refused the file (its refused-loads count went up and it keeps its old model)."""
    new_id = hashlib.sha256(data).hexdigest()
    refused_before = refusals(replica)
    started = time.monotonic()
    install_model(data, replica.model_path)
    while time.monotonic() - started < timeout_s:
        current = info(replica)
        if current["model_id"] == new_id:
            return Step(replica.name, new_id, True, None, time.monotonic() - started)
        if refusals(replica) > refused_before:
            seconds = time.monotonic() - started
            current = info(replica)  # read again: the refusal may have come after the first read
            return Step(replica.name, current["model_id"], False, current["last_refused"], seconds)
        time.sleep(0.1)
    raise TimeoutError(f"{replica.name} neither swapped to nor refused the new model in {timeout_s:g} s")


def rollout(stack: Stack, model: Path, log=print) -> list[Step]:
    """Give every replica ``model``, one after the other, each only once the previous one serves it; stop at the
    first refusal (the replicas not reached keep their model)."""
    data, steps = Path(model).read_bytes(), []
    for replica in stack.replicas:
        step = roll_replica(replica, data)
        steps.append(step)
        if not step.swapped:
            raise RolloutRefused(f"{replica.name} refused {model} and keeps model {step.model_id[:12]}: {step.refused}")
        log(f"{replica.name}: serving {step.model_id[:12]} after {step.seconds:.1f} s")
    return steps

