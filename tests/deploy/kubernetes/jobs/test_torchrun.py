"""torchrun in the training Jobs: processes per node as the pod's GPUs, and with several nodes the Indexed Job's
pods and the headless Service's pod 0 as rendezvous."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from cifar10_pipeline.training.distributed import SHARED_STORE_OFF
from tests.support.jobs import command, container, edit_script, gpus, indexed_problems, option
from tests.support.kubernetes import GPU_RESOURCE, env, one, pod_template


def torchrun_problems(job: dict[str, Any], service: dict[str, Any] | None) -> list[str]:
    """torchrun's processes per node are the pod's GPUs; with several nodes, --nnodes is the Indexed Job's pods and
    the rendezvous is pod 0 of the headless Service that the pods' subdomain names, on its port, and a group that
    restarts gets a key-value store of its own for each attempt."""
    argv = command(container(job), "torchrun")
    problems = []
    if option(argv, "--nproc-per-node") != str(gpus(job)):
        problems.append(f"--nproc-per-node {option(argv, '--nproc-per-node')}, GPUs {gpus(job)}")
    if service is None:
        if "--standalone" not in argv:
            problems.append("one node without --standalone")
        return problems
    problems += indexed_problems(job)
    name, spec = job["metadata"]["name"], pod_template(job)[1]
    if option(argv, "--nnodes") != str(job["spec"]["completions"]):
        problems.append(f"--nnodes {option(argv, '--nnodes')}, pods {job['spec']['completions']}")
    svc = service["metadata"]["name"]
    if spec.get("subdomain") != svc:
        problems.append(f"the pods' subdomain {spec.get('subdomain')!r} is not the Service {svc!r}")
    if service["spec"].get("clusterIP") != "None" or service["spec"].get("selector") != {
            "batch.kubernetes.io/job-name": name}:
        problems.append("the Service is not headless over the Job's pods")
    ports = {p["port"] for p in service["spec"]["ports"]}
    endpoint = option(argv, "--rdzv-endpoint") or ""
    host, _, port = endpoint.rpartition(":")
    if host != f"{name}-0.{svc}" or int(port or 0) not in ports:
        problems.append(f"--rdzv-endpoint {endpoint}, pod 0 of the Service is {name}-0.{svc}:{sorted(ports)}")
    if option(argv, "--rdzv-backend") != "c10d":
        problems.append("the rendezvous backend is not c10d")
    if option(argv, "--max-restarts") not in (None, "0") and env(container(job)).get(SHARED_STORE_OFF, {}).get(
            "value") != "1":
        problems.append(f"restarts on several nodes without {SHARED_STORE_OFF}=1: a restarted group would hang")
    return problems


def test_torchrun_fits_the_training_job(jobs):
    job = one(jobs["train"], "Job")
    assert torchrun_problems(job, None) == []
    assert option(command(container(job), "torchrun"), "--max-restarts") not in (None, "0")


def test_torchrun_fits_the_multinode_job(jobs):
    assert torchrun_problems(one(jobs["multinode"], "Job"), one(jobs["multinode"], "Service")) == []


@pytest.mark.parametrize("mutate", [
    lambda job, service: job["spec"].update(completions=3),
    lambda job, service: job["spec"].update(parallelism=1),
    edit_script("--nnodes 2", "--nnodes 3"),
    edit_script("--nproc-per-node 4", "--nproc-per-node 8"),
    edit_script("cifar10-train-multinode-0.cifar10-train-multinode:29500", "cifar10-train-multinode-0:29500"),
    edit_script("multinode:29500", "multinode:29400"),
    lambda job, service: pod_template(job)[1].pop("subdomain"),
    lambda job, service: service["spec"].pop("clusterIP"),
    lambda job, service: container(job)["resources"]["limits"].update({GPU_RESOURCE: 2}),
    lambda job, service: container(job).update(env=[e for e in container(job)["env"] if e["name"] != SHARED_STORE_OFF]),
], ids=["completions", "parallelism", "nnodes", "nproc", "endpoint-host", "endpoint-port", "subdomain", "headless",
        "gpus", "shared-store"])
def test_the_torchrun_check_catches(jobs, mutate):
    job, service = copy.deepcopy(one(jobs["multinode"], "Job")), copy.deepcopy(one(jobs["multinode"], "Service"))
    mutate(job, service)
    assert torchrun_problems(job, service)
