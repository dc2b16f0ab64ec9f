"""The training and tuning Jobs of deploy/kubernetes/jobs/: valid Kubernetes, restricted pods, and wired together:
the training Job's model lands on the file the serving replicas watch, the tuning workers' storage URL comes from a
Secret key that exists and names the example database, the best params go where the training Job reads them, the
Indexed Jobs' counts agree with torchrun's and with the GPUs asked for, torchrun's rendezvous is the headless
Service's pod 0, the training flags are checked before torchrun starts, and a retried training pod continues its
Job's run (the script run with stubs for the programs it calls). Each ``*_problems`` function lists what
is wrong, so a broken copy shows that it is noticed."""

from __future__ import annotations

import copy
import re
import shlex
import subprocess
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.support.kubernetes import (
    DEPLOY,
    GPU_RESOURCE,
    MODEL_CLAIM,
    VERSIONS,
    env,
    find,
    image_user,
    one,
    pod_template,
    schema_errors,
    security_problems,
)
from tests.support.paths import REPO

UID = image_user(REPO / "Dockerfile.train")
POSTGRES_UID = 999  # the official postgres image's user
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


# ---------------------------------------------------------------- valid and restricted


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


# ---------------------------------------------------------------- the model reaches the replicas


def model_problems(job: dict[str, Any], deployment: dict[str, Any]) -> list[str]:
    """Whether ``job``'s cifar10-export writes the file that ``deployment``'s replicas serve and watch."""
    out = option(command(container(job), "cifar10-export"), "--out")
    served = env(container(deployment))["INFERENCE_MODEL_PATH"]["value"]
    written, watched = on_claim(job, out), on_claim(deployment, served)
    if written is None:
        return [f"{job['metadata']['name']}: the export writes {out}, on no volume claim"]
    if written != watched:
        return [f"{job['metadata']['name']}: the export writes {written}, the replicas serve {watched}"]
    mounts = [m for m in container(job)["volumeMounts"] if PurePosixPath(out).is_relative_to(m["mountPath"])]
    if any(m.get("readOnly") for m in mounts):
        return [f"{job['metadata']['name']}: {out} is on a read-only mount"]
    return []


@pytest.mark.parametrize("name", ["train", "multinode"])
def test_the_job_exports_the_file_the_replicas_watch(jobs, overlays, name):
    job = one(jobs[name], "Job")
    assert on_claim(job, "/models/model.onnx") == (MODEL_CLAIM, PurePosixPath("model.onnx"))
    for objects in overlays.values():
        assert model_problems(job, one(objects, "Deployment")) == []


def test_the_export_comes_after_training_and_keeps_the_gate(jobs):
    programs = [argv[0] for argv in commands(container(one(jobs["train"], "Job")))]
    assert programs.index("torchrun") < programs.index("cifar10-export")
    export = command(container(one(jobs["train"], "Job")), "cifar10-export")
    assert not {"--max-abs-diff", "--min-agreement"} & set(export)  # the default parity gate, not a looser one
    assert "set -eu" in container(one(jobs["train"], "Job"))["args"][0]  # a failed step fails the Job


def _export_to(path):
    def mutate(job):
        c = container(job)
        c["args"][0] = c["args"][0].replace("--out /models/model.onnx", f"--out {path}")
    return mutate


@pytest.mark.parametrize("mutate", [_export_to("/models/new/model.onnx"), _export_to("/tmp/model.onnx"),
                                    _export_to("/work/model.onnx")])
def test_the_model_check_catches_a_model_put_elsewhere(jobs, overlays, mutate):
    job = copy.deepcopy(one(jobs["train"], "Job"))
    mutate(job)
    assert model_problems(job, one(overlays["cpu"], "Deployment"))


# ---------------------------------------------------------------- tuning


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


def indexed_problems(job: dict[str, Any]) -> list[str]:
    spec = job["spec"]
    problems = []
    if spec.get("completionMode") != "Indexed":
        problems.append("not an Indexed Job")
    if spec.get("completions") != spec.get("parallelism"):
        problems.append(f"completions {spec.get('completions')} != parallelism {spec.get('parallelism')}")
    return problems


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


# ---------------------------------------------------------------- torchrun


def torchrun_problems(job: dict[str, Any], service: dict[str, Any] | None) -> list[str]:
    """torchrun's processes per node are the pod's GPUs; with several nodes, --nnodes is the Indexed Job's pods and
    the rendezvous is pod 0 of the headless Service that the pods' subdomain names, on its port."""
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
    return problems


def test_torchrun_fits_the_training_job(jobs):
    job = one(jobs["train"], "Job")
    assert torchrun_problems(job, None) == []
    assert option(command(container(job), "torchrun"), "--max-restarts") not in (None, "0")


def test_torchrun_fits_the_multinode_job(jobs):
    assert torchrun_problems(one(jobs["multinode"], "Job"), one(jobs["multinode"], "Service")) == []
    script = container(one(jobs["multinode"], "Job"))["args"][0]
    assert re.search(r'if \[ "\$JOB_COMPLETION_INDEX" = 0 \]; then\s+cifar10-export', script)  # one export


def check_problems(job: dict[str, Any]) -> list[str]:
    """Before torchrun the script runs ``cifar10-train --check`` with the training flags (torchrun's after ``-m
    cifar10_pipeline.training``): a user error exits 2 once instead of at every restart of the group. A Job that
    retries failed pods fails at once on that exit code (podFailurePolicy)."""
    lines = commands(container(job))
    programs = [argv[0] for argv in lines]
    if "cifar10-train" not in programs or programs.index("cifar10-train") > programs.index("torchrun"):
        return ["no cifar10-train --check before torchrun"]
    check, group = lines[programs.index("cifar10-train")], command(container(job), "torchrun")
    problems = [] if "--check" in check else ["cifar10-train before torchrun without --check"]
    flags = group[group.index("cifar10_pipeline.training") + 1:]
    if [a for a in check[1:] if a != "--check"] != flags:
        problems.append(f"checked {check[1:]}, trained {flags}")
    if job["spec"]["backoffLimit"] > 0:
        codes = [r["onExitCodes"] for r in job["spec"].get("podFailurePolicy", {}).get("rules", [])
                 if r["action"] == "FailJob" and "onExitCodes" in r]
        if not any(c.get("containerName") == container(job)["name"] and c["operator"] == "In" and 2 in c["values"]
                   for c in codes):
            problems.append("a pod that exits 2 is retried")
    return problems


@pytest.mark.parametrize("name", ["train", "multinode"])
def test_the_training_jobs_check_what_training_needs_before_torchrun(jobs, name):
    assert check_problems(one(jobs[name], "Job")) == []


def _edit_script(old, new):
    def mutate(job, service):
        c = container(job)
        assert old in c["args"][0]
        c["args"][0] = c["args"][0].replace(old, new)
    return mutate


@pytest.mark.parametrize("mutate", [
    lambda job, service: job["spec"].update(completions=3),
    lambda job, service: job["spec"].update(parallelism=1),
    _edit_script("--nnodes 2", "--nnodes 3"),
    _edit_script("--nproc-per-node 4", "--nproc-per-node 8"),
    _edit_script("cifar10-train-multinode-0.cifar10-train-multinode:29500", "cifar10-train-multinode-0:29500"),
    _edit_script("multinode:29500", "multinode:29400"),
    lambda job, service: pod_template(job)[1].pop("subdomain"),
    lambda job, service: service["spec"].pop("clusterIP"),
    lambda job, service: container(job)["resources"]["limits"].update({GPU_RESOURCE: 2}),
], ids=["completions", "parallelism", "nnodes", "nproc", "endpoint-host", "endpoint-port", "subdomain", "headless",
        "gpus"])
def test_the_torchrun_check_catches(jobs, mutate):
    job, service = copy.deepcopy(one(jobs["multinode"], "Job")), copy.deepcopy(one(jobs["multinode"], "Service"))
    mutate(job, service)
    assert torchrun_problems(job, service)


def _move_check_after_torchrun(job, service):
    c = container(job)
    lines = c["args"][0].splitlines(keepends=True)
    (check,) = [line for line in lines if line.startswith("cifar10-train ")]
    lines.remove(check)
    lines.insert(lines.index(next(line for line in lines if line.startswith("if [ -f /models"))), check)
    c["args"][0] = "".join(lines)


@pytest.mark.parametrize("mutate", [
    _edit_script(" --check\n", "\n"),
    _edit_script("--framework torch $flags --check", "--framework torch --check"),
    _move_check_after_torchrun,
    lambda job, service: job["spec"].pop("podFailurePolicy"),
    lambda job, service: job["spec"]["podFailurePolicy"]["rules"][0]["onExitCodes"].update(values=[1]),
], ids=["no-check", "other-flags", "torchrun-first", "no-policy", "other-code"])
def test_the_check_before_torchrun_catches(jobs, mutate):
    job = copy.deepcopy(one(jobs["train"], "Job"))
    mutate(job, None)
    assert check_problems(job)


# ---------------------------------------------------------------- a retried pod


UID_LABEL = "metadata.labels['batch.kubernetes.io/controller-uid']"
PROGRAMS = ("cifar10-train", "torchrun", "cifar10-export")


def run_script(job: dict[str, Any], root: Path, job_uid: str) -> dict[str, list[str]]:
    """Run the training Job's script with /bin/sh, its two volumes as folders under ``root`` and the programs it
    calls as stubs that only record their arguments; each program's argv (the last call of it)."""
    script = container(job)["args"][0].replace("/work/", f"{root}/work/").replace("/models/", f"{root}/models/")
    bin_dir, log = root / "bin", root / "calls.log"
    bin_dir.mkdir(exist_ok=True)
    for program in PROGRAMS:
        stub = bin_dir / program
        stub.write_text(f'#!/bin/sh\necho "{program} $*" >> {log}\n')
        stub.chmod(0o755)
    log.unlink(missing_ok=True)
    environment = {"PATH": f"{bin_dir}:/usr/bin:/bin", "DATASET": env(container(job))["DATASET"]["value"],
                   "JOB_UID": job_uid}
    subprocess.run(["/bin/sh", "-c", script], env=environment, check=True, timeout=60)
    return {line.split()[0]: line.split()[1:] for line in log.read_text().splitlines()}


def test_every_pod_of_the_training_job_knows_the_jobs_uid(jobs):
    variable = env(container(one(jobs["train"], "Job")))["JOB_UID"]
    assert variable["valueFrom"] == {"fieldRef": {"fieldPath": UID_LABEL}}


def test_a_retried_pod_continues_the_jobs_run_from_its_checkpoint(jobs, tmp_path):
    job = one(jobs["train"], "Job")
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "best_params.json").write_text("{}")
    run = tmp_path / "work" / "runs" / "torch-cifar10-job-0f9e"

    first = run_script(job, tmp_path, "0f9e")  # the first pod: a new run, named after the Job
    assert first["cifar10-train"] == ["--framework", "torch", "--dataset", "cifar10", "--device", "cuda",
                                      "--runs-dir", f"{tmp_path}/work/runs", "--run-name", run.name,
                                      "--params", f"{tmp_path}/work/best_params.json", "--check"]
    assert first["torchrun"][first["torchrun"].index("--framework"):] == first["cifar10-train"][:-1]
    assert first["cifar10-export"][:2] == ["--run", str(run)]

    run.mkdir(parents=True)  # the first pod died after an epoch: its run and checkpoint are on the volume
    (run / "config.json").write_text("{}")
    (run / "checkpoint.pt").write_text("")
    retried = run_script(job, tmp_path, "0f9e")
    assert retried["cifar10-train"] == ["--framework", "torch", "--runs-dir", f"{tmp_path}/work/runs", "--resume",
                                        str(run), "--check"]
    assert retried["torchrun"][retried["torchrun"].index("--framework"):] == retried["cifar10-train"][:-1]
    assert retried["cifar10-export"][:2] == ["--run", str(run)]
    other = run_script(job, tmp_path, "7c1d")  # another Job: a run of its own
    assert option(other["cifar10-train"], "--run-name") == "torch-cifar10-job-7c1d"


def test_a_run_that_died_before_its_first_checkpoint_starts_again(jobs, tmp_path):
    run = tmp_path / "work" / "runs" / "torch-cifar10-job-0f9e"
    run.mkdir(parents=True)
    (run / "config.json").write_text("{}")  # cifar10-train would refuse to make a run of that name again
    calls = run_script(one(jobs["train"], "Job"), tmp_path, "0f9e")
    assert not run.exists() and option(calls["torchrun"], "--run-name") == run.name
    assert "--resume" not in calls["torchrun"]


def test_the_multinode_example_says_it_never_ran():
    for path in sorted((DEPLOY / "jobs" / "multinode").iterdir()):
        assert "NOT RUN ON A REAL CLUSTER" in path.read_text(), path.name
