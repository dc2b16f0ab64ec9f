"""The serving pods of deploy/kubernetes/ as their tests read them: the image's user, the one serving container,
each variant's Deployment. Shared by the tests of tests/deploy/kubernetes/pods/."""

from __future__ import annotations

from tests.support.kubernetes import image_user, one, pod_template
from tests.support.paths import REPO

UID = image_user(REPO / "Dockerfile")


def serving_container(obj: dict) -> dict:
    (container,) = pod_template(obj)[1]["containers"]
    return container


def deployments(overlays) -> dict[str, dict]:
    return {name: one(objects, "Deployment") for name, objects in overlays.items()}
