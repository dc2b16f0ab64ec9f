"""The training Jobs' model lands on the file the serving replicas watch, after training, with the parity gate
kept."""

from __future__ import annotations

import copy
from pathlib import PurePosixPath
from typing import Any

import pytest

from tests.support.jobs import command, commands, container, on_claim, option
from tests.support.kubernetes import MODEL_CLAIM, env, one


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
