"""The serving pods run restricted, as the images' one user; the security check catches each relaxation."""

from __future__ import annotations

import copy

import pytest

from tests.support.kubernetes import image_user, one, pod_template, security_problems
from tests.support.paths import REPO
from tests.support.pods import UID, deployments


def test_both_images_run_as_the_same_user():
    assert image_user(REPO / "Dockerfile.gpu") == UID != 0


def test_every_pod_is_restricted(overlays, model_store, inference_service):
    objects = [*deployments(overlays).values(), one(model_store, "Pod"), inference_service]
    problems = [f"{obj['kind']}/{obj['metadata']['name']}: {p}"
                for obj in objects for p in security_problems(pod_template(obj)[1], UID)]
    assert problems == []


def _drop_own(key):
    def mutate(spec):
        del spec["containers"][0]["securityContext"][key]
    return mutate


RELAXATIONS = {
    "root filesystem writable": _drop_own("readOnlyRootFilesystem"),
    "privilege escalation allowed": _drop_own("allowPrivilegeEscalation"),
    "capabilities kept": _drop_own("capabilities"),
    "runs as root": lambda spec: spec["securityContext"].update(runAsUser=0),
    "non-root not enforced": lambda spec: [spec["securityContext"].pop("runAsNonRoot"),
                                           spec["containers"][0]["securityContext"].pop("runAsNonRoot")],
    "no seccomp profile": lambda spec: spec["securityContext"].pop("seccompProfile"),
    "API token mounted": lambda spec: spec.pop("automountServiceAccountToken"),
    "no memory limit": lambda spec: spec["containers"][0]["resources"]["limits"].pop("memory"),
    "an init container as root": lambda spec: spec.setdefault("initContainers", []).append(
        {**copy.deepcopy(spec["containers"][0]), "name": "init", "securityContext": {"runAsUser": 0}}),
}


@pytest.mark.parametrize("relaxation", RELAXATIONS)
def test_the_security_check_catches(overlays, relaxation):
    spec = copy.deepcopy(pod_template(one(overlays["cpu"], "Deployment"))[1])
    RELAXATIONS[relaxation](spec)
    assert security_problems(spec, UID), f"{relaxation} went unnoticed"
