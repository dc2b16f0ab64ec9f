"""The tuning Job: an Indexed Job of workers restarted on failure, whose storage URL comes from a Secret key that
exists and names the example database, and whose best params go where the training Job reads them."""

from __future__ import annotations

import copy
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.support.jobs import WORK_CLAIM, command, container, gpus, indexed_problems, on_claim, option
from tests.support.kubernetes import env, one, pod_template


def storage_problems(objects: list[dict[str, Any]]) -> list[str]:
    """The workers' storage URL comes from a key of the Secret, and that URL reaches the example database as its
    user, with its password, at its Service's name and port."""
    secret = one(objects, "Secret")
    worker = container(one(objects, "Job"))
    ref = env(worker)["OPTUNA_STORAGE"]["valueFrom"]["secretKeyRef"]
    if ref["name"] != secret["metadata"]["name"] or ref["key"] not in secret["stringData"]:
        return [f"OPTUNA_STORAGE names {ref['name']}/{ref['key']}, which the Secret does not have"]
    if option(command(worker, "cifar10-tune"), "--storage") != "$OPTUNA_STORAGE":
        return ["cifar10-tune does not get --storage $OPTUNA_STORAGE"]
    url = urlsplit(secret["stringData"][ref["key"]])
    postgres = container(one(objects, "StatefulSet"))
    variables = env(postgres)
    password_ref = variables["POSTGRES_PASSWORD"]["valueFrom"]["secretKeyRef"]
    service = one(objects, "Service")
    ports = {p["port"] for p in service["spec"]["ports"]}
    wanted = {"scheme": "postgresql", "user": variables["POSTGRES_USER"]["value"],
              "password": secret["stringData"].get(password_ref["key"]), "host": service["metadata"]["name"],
              "port": url.port if url.port in ports else f"one of {ports}",
              "database": variables["POSTGRES_DB"]["value"]}
    got = {"scheme": url.scheme, "user": url.username, "password": url.password, "host": url.hostname,
           "port": url.port, "database": url.path.lstrip("/")}
    return [f"storage URL {k}: {got[k]!r}, the database's is {wanted[k]!r}" for k in wanted if got[k] != wanted[k]]


def test_the_workers_reach_the_study_database_through_the_secret(jobs):
    assert storage_problems(jobs["tune"]) == []
    assert one(jobs["tune"], "StatefulSet")["spec"]["serviceName"] == one(jobs["tune"], "Service")["metadata"]["name"]


def _set_secret(key, value):
    return lambda objects: one(objects, "Secret")["stringData"].__setitem__(key, value)


def _rename_secret_key(objects):
    data = one(objects, "Secret")["stringData"]
    data["storage"] = data.pop("storage-url")


@pytest.mark.parametrize("mutate", [
    _rename_secret_key,
    _set_secret("postgres-password", "another"),
    _set_secret("storage-url", "postgresql://optuna:change-me@postgres:5432/optuna"),
    _set_secret("storage-url", "postgresql://optuna:change-me@cifar10-postgres:5433/optuna"),
    _set_secret("storage-url", "postgresql://tune:change-me@cifar10-postgres:5432/optuna"),
], ids=["key", "password", "host", "port", "user"])
def test_the_storage_check_catches(jobs, mutate):
    objects = copy.deepcopy(jobs["tune"])
    mutate(objects)
    assert storage_problems(objects)


def test_the_tuning_workers_are_an_indexed_job_restarted_on_failure(jobs):
    job = one(jobs["tune"], "Job")
    assert indexed_problems(job) == []
    assert job["spec"]["completions"] > 1 and job["spec"]["backoffLimit"] > 0
    assert pod_template(job)[1]["restartPolicy"] == "OnFailure"
    tune = command(container(job), "cifar10-tune")
    assert option(tune, "--workers") == "1" and gpus(job) == 1  # one worker per pod, on the pod's GPU
    assert "--no-final-test" in tune and option(tune, "--study-name")  # one named study for every index


def test_the_best_params_go_where_the_training_job_reads_them(jobs):
    tune, train = one(jobs["tune"], "Job"), one(jobs["train"], "Job")
    best = option(command(container(tune), "cifar10-tune"), "--best")
    assert on_claim(tune, best) == on_claim(train, best) == (WORK_CLAIM, PurePosixPath("best_params.json"))
    script = container(train)["args"][0]
    assert f"[ -f {best} ]" in script and f'params="--params {best}"' in script and "$params" in script


def test_the_store_holds_the_work_claim(jobs):
    claim = one(jobs["store"], "PersistentVolumeClaim")
    assert claim["metadata"]["name"] == WORK_CLAIM and claim["spec"]["accessModes"] == ["ReadWriteMany"]
