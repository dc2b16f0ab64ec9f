"""A retried training pod continues its Job's run: the Job's script run with /bin/sh, with stubs for the programs
it calls."""

from __future__ import annotations

import pytest

from tests.support.jobs import UID_LABEL, container, option, stubbed_calls
from tests.support.kubernetes import env, one


@pytest.mark.parametrize("name", ["train", "multinode"])
def test_every_pod_of_a_training_job_knows_the_jobs_uid(jobs, name):
    variable = env(container(one(jobs[name], "Job")))["JOB_UID"]
    assert variable["valueFrom"] == {"fieldRef": {"fieldPath": UID_LABEL}}


def test_a_retried_pod_continues_the_jobs_run_from_its_checkpoint(jobs, tmp_path):
    job = one(jobs["train"], "Job")
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "best_params.json").write_text("{}")
    run = tmp_path / "work" / "runs" / "torch-cifar10-job-0f9e"

    first = stubbed_calls(job, tmp_path, "0f9e")  # the first pod: a new run, named after the Job
    assert first["cifar10-train"] == ["--framework", "torch", "--dataset", "cifar10", "--device", "cuda",
                                      "--runs-dir", f"{tmp_path}/work/runs", "--run-name", run.name,
                                      "--params", f"{tmp_path}/work/best_params.json", "--check"]
    assert first["torchrun"][first["torchrun"].index("--framework"):] == first["cifar10-train"][:-1]
    assert first["cifar10-export"][:2] == ["--run", str(run)]

    run.mkdir(parents=True)  # the first pod died after an epoch: its run and checkpoint are on the volume
    (run / "config.json").write_text("{}")
    (run / "checkpoint.pt").write_text("")
    retried = stubbed_calls(job, tmp_path, "0f9e")
    assert retried["cifar10-train"] == ["--framework", "torch", "--runs-dir", f"{tmp_path}/work/runs", "--resume",
                                        str(run), "--check"]
    assert retried["torchrun"][retried["torchrun"].index("--framework"):] == retried["cifar10-train"][:-1]
    assert retried["cifar10-export"][:2] == ["--run", str(run)]
    other = stubbed_calls(job, tmp_path, "7c1d")  # another Job: a run of its own
    assert option(other["cifar10-train"], "--run-name") == "torch-cifar10-job-7c1d"


def test_a_run_that_died_before_its_first_checkpoint_starts_again(jobs, tmp_path):
    run = tmp_path / "work" / "runs" / "torch-cifar10-job-0f9e"
    run.mkdir(parents=True)
    (run / "config.json").write_text("{}")  # cifar10-train would refuse to make a run of that name again
    calls = stubbed_calls(one(jobs["train"], "Job"), tmp_path, "0f9e")
    assert not run.exists() and option(calls["torchrun"], "--run-name") == run.name
    assert "--resume" not in calls["torchrun"]
