"""The Jobs of deploy/kubernetes/jobs/ as their tests read them: a Job's one container, the command lines of its
``sh -c`` script, an option's value, where a path lands on the volume claims, its GPUs; and what an Indexed Job
must be; and a Job's script run on this machine, its volumes as folders. Shared by the tests of
tests/deploy/kubernetes/jobs/."""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path, PurePosixPath
from typing import Any, Mapping

from tests.support.kubernetes import GPU_RESOURCE, env, image_user, pod_template
from tests.support.paths import REPO

UID = image_user(REPO / "Dockerfile.train")
WORK_CLAIM = "cifar10-training"
UID_LABEL = "metadata.labels['batch.kubernetes.io/controller-uid']"
TRAINING_PROGRAMS = ("cifar10-train", "torchrun", "cifar10-export")


def container(obj: dict[str, Any]) -> dict[str, Any]:
    (c,) = pod_template(obj)[1]["containers"]
    return c


def commands(c: dict[str, Any]) -> list[list[str]]:
    """The command lines of a container's ``sh -c`` script, continuation lines joined, one argv each."""
    assert c["command"] == ["/bin/sh", "-c"], c["command"]
    script = c["args"][0].replace("\\\n", " ")
    return [shlex.split(line) for line in script.splitlines() if line.strip()]


def command(c: dict[str, Any], program: str) -> list[str]:
    (found,) = [argv for argv in commands(c) if argv[0] == program]
    return found


def option(argv: list[str], name: str) -> str | None:
    """The value of ``--name VALUE`` or ``--name=VALUE`` in ``argv``; None when absent."""
    for i, arg in enumerate(argv):
        if arg == name:
            return argv[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


def on_claim(obj: dict[str, Any], path: str) -> tuple[str, PurePosixPath] | None:
    """(claim name, path inside the claim) of a file ``path`` in the container of ``obj``; None off any claim."""
    _, spec = pod_template(obj)
    claims = {v["name"]: v["persistentVolumeClaim"]["claimName"] for v in spec["volumes"]
              if "persistentVolumeClaim" in v}
    for mount in container(obj)["volumeMounts"]:
        inside = PurePosixPath(path)
        if mount["name"] in claims and inside.is_relative_to(mount["mountPath"]):
            return claims[mount["name"]], inside.relative_to(mount["mountPath"])
    return None


def gpus(obj: dict[str, Any]) -> int:
    return int(container(obj)["resources"]["limits"].get(GPU_RESOURCE, 0))


def indexed_problems(job: dict[str, Any]) -> list[str]:
    spec = job["spec"]
    problems = []
    if spec.get("completionMode") != "Indexed":
        problems.append("not an Indexed Job")
    if spec.get("completions") != spec.get("parallelism"):
        problems.append(f"completions {spec.get('completions')} != parallelism {spec.get('parallelism')}")
    return problems


def edit_script(old: str, new: str):
    """A mutation of a (Job, Service) pair for the checkers' tests: ``old`` replaced by ``new`` in the Job's script."""
    def mutate(job, service):
        c = container(job)
        assert old in c["args"][0]
        c["args"][0] = c["args"][0].replace(old, new)
    return mutate


def local_script(job: dict[str, Any], root: Path, edits: Mapping[str, str] | None = None) -> str:
    """The Job's script with ``edits`` (old: new, each present) made and its two volumes, /work and /models, as
    folders under ``root``."""
    script = container(job)["args"][0]
    for old, new in (edits or {}).items():
        assert old in script, old
        script = script.replace(old, new)
    return script.replace("/work/", f"{root}/work/").replace("/models/", f"{root}/models/")


def stubbed_calls(job: dict[str, Any], root: Path, job_uid: str, **variables: str) -> dict[str, list[str]]:
    """Run a training Job's script with /bin/sh (``local_script``), the programs it calls as stubs that only record
    their arguments, the pod's ``JOB_UID`` and ``variables``; each program's argv (the last call of it)."""
    bin_dir, log = root / "bin", root / "calls.log"
    bin_dir.mkdir(exist_ok=True)
    for program in TRAINING_PROGRAMS:
        stub = bin_dir / program
        stub.write_text(f'#!/bin/sh\necho "{program} $*" >> {log}\n')
        stub.chmod(0o755)
    log.unlink(missing_ok=True)
    environment = {"PATH": f"{bin_dir}:/usr/bin:/bin", "DATASET": env(container(job))["DATASET"]["value"],
                   "JOB_UID": job_uid, **variables}
    subprocess.run(["/bin/sh", "-c", local_script(job, root)], env=environment, check=True, timeout=60)
    return {line.split()[0]: line.split()[1:] for line in log.read_text().splitlines()}
