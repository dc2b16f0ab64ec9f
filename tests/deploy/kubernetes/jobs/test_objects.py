"""The Jobs of deploy/kubernetes/jobs/ render, validate against the Kubernetes schemas, run restricted pods as the
serving images' user, and the multi-node example says it never ran on a real cluster."""

from __future__ import annotations

import pytest

from tests.support.jobs import UID
from tests.support.kubernetes import (
    DEPLOY,
    VERSIONS,
    find,
    image_user,
    one,
    pod_template,
    schema_errors,
    security_problems,
)
from tests.support.paths import REPO

POSTGRES_UID = 999  # the official postgres image's user


def test_each_kustomization_renders_its_objects(jobs):
    kinds = {name: sorted(obj["kind"] for obj in objects) for name, objects in jobs.items()}
    assert kinds == {"store": ["PersistentVolumeClaim"], "tune": ["Job", "Secret", "Service", "StatefulSet"],
                     "train": ["Job"], "multinode": ["Job", "Service"]}


@pytest.mark.parametrize("version", VERSIONS)
def test_every_object_validates(jobs, version):
    assert [e for objects in jobs.values() for obj in objects for e in schema_errors(obj, version)] == []


def test_every_pod_is_restricted(jobs):
    problems = [f"{obj['metadata']['name']}: {p}" for objects in jobs.values() for obj in find(objects, "Job")
                for p in security_problems(pod_template(obj)[1], UID)]
    postgres = one(jobs["tune"], "StatefulSet")
    problems += [f"postgres: {p}" for p in security_problems(pod_template(postgres)[1], POSTGRES_UID)]
    assert problems == []


def test_the_training_image_writes_as_the_serving_user():
    assert UID == image_user(REPO / "Dockerfile") != 0


def test_the_multinode_example_says_it_never_ran():
    for path in sorted((DEPLOY / "jobs" / "multinode").iterdir()):
        assert "NOT RUN ON A REAL CLUSTER" in path.read_text(), path.name
