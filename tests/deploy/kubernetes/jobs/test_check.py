"""The training Jobs check the training flags with ``cifar10-train --check`` before torchrun starts, and fail at
once on its exit code for a user error."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.support.jobs import command, commands, container, edit_script
from tests.support.kubernetes import one


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


def _move_check_after_torchrun(job, service):
    c = container(job)
    lines = c["args"][0].splitlines(keepends=True)
    (check,) = [line for line in lines if line.startswith("cifar10-train ")]
    lines.remove(check)
    lines.insert(lines.index(next(line for line in lines if line.startswith("if [ -f /models"))), check)
    c["args"][0] = "".join(lines)


@pytest.mark.parametrize("mutate", [
    edit_script(" --check\n", "\n"),
    edit_script("--framework torch $flags --check", "--framework torch --check"),
    _move_check_after_torchrun,
    lambda job, service: job["spec"].pop("podFailurePolicy"),
    lambda job, service: job["spec"]["podFailurePolicy"]["rules"][0]["onExitCodes"].update(values=[1]),
], ids=["no-check", "other-flags", "torchrun-first", "no-policy", "other-code"])
def test_the_check_before_torchrun_catches(jobs, mutate):
    job = copy.deepcopy(one(jobs["train"], "Job"))
    mutate(job, None)
    assert check_problems(job)
