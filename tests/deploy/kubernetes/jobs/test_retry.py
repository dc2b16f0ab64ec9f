"""A retried training pod continues its Job's run: the Job's script run with /bin/sh, with stubs for the programs
it calls."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from tests.support.jobs import container, option
from tests.support.kubernetes import env, one

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
