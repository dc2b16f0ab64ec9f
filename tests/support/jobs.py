"""The Jobs of deploy/kubernetes/jobs/ as their tests read them: a Job's one container, the command lines of its
``sh -c`` script, an option's value, where a path lands on the volume claims, its GPUs; and what an Indexed Job
must be. Shared by the tests of tests/deploy/kubernetes/jobs/."""

from __future__ import annotations

import shlex
from pathlib import PurePosixPath
from typing import Any

from tests.support.kubernetes import GPU_RESOURCE, image_user, pod_template
from tests.support.paths import REPO

UID = image_user(REPO / "Dockerfile.train")
WORK_CLAIM = "cifar10-training"


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
