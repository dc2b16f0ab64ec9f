"""The multi-node training Job's script run on this machine as its two pods: ``start_job`` and the run of one
uninterrupted Job."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from cifar10_pipeline.tracking.settings import ENV as TRACKING_ENV
from harness.server import free_port, process_tree
from tests.support.jobs import container, local_script
from tests.support.kubernetes import one
from tests.support.paths import REPO

PODS = 2  # the Job's completions (test_torchrun checks --nnodes against them)
JOB_UID = "5b2f0c1e"
# a few seconds of training: float32 steps and no dropout, so that a group restarted from a checkpoint ends with
# the uninterrupted group's model bit for bit (tests/training/test_distributed.py says why)
PARAMS = {"epochs": 2, "width": 16, "batch_size": 128, "lr": 0.1, "dropout": 0.0, "max_train_samples": 1500,
          "max_test_samples": 500, "precision": "float32"}


@dataclass
class LocalJob:
    root: Path  # the pods' volumes as folders: root/work (the training claim) and root/models (the replicas')
    pods: list[subprocess.Popen]

    @property
    def run(self) -> Path:
        return self.root / "work" / "runs" / f"torch-synthetic-job-{JOB_UID}"

    def finish(self) -> list[str]:
        """Each pod's output, once every pod has exited 0."""
        outputs = [pod.communicate(timeout=300)[0] for pod in self.pods]
        for index, (pod, out) in enumerate(zip(self.pods, outputs)):
            assert pod.returncode == 0, f"pod {index}:\n{out}"
        return outputs


def start_pods(job: dict[str, Any], root: Path) -> LocalJob:
    """The Job's pods as processes of this machine, each its script with /bin/sh and its container's environment
    (the literal values; volume paths under ``root``): one torchrun agent per pod with one gloo process on the CPU
    (not 4 on GPUs), the rendezvous and every address of the group on loopback (a free port instead of pod 0's
    name), the synthetic data set, PARAMS as the tuned params the script finds on the volume, the real programs of
    this environment running this repository's code."""
    (root / "work").mkdir(parents=True)
    (root / "models").mkdir()
    (root / "work" / "best_params.json").write_text(json.dumps(PARAMS))
    script = local_script(job, root, {
        "--device cuda": "--device cpu", "--nproc-per-node 4": "--nproc-per-node 1",
        "--rdzv-backend c10d": "--rdzv-backend c10d --local-addr 127.0.0.1",
        "cifar10-train-multinode-0.cifar10-train-multinode:29500": f"127.0.0.1:{free_port()}"})
    variables = {e["name"]: re.sub(r"^/(work|models)/", rf"{root}/\1/", e["value"])
                 for e in container(job)["env"] if "value" in e}
    environment = {**os.environ, **variables, "DATASET": "synthetic", "JOB_UID": JOB_UID,
                   "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
                   "PYTHONPATH": f"{REPO / 'src'}{os.pathsep}{REPO}", "GLOO_SOCKET_IFNAME": "lo",
                   "OMP_NUM_THREADS": "1", TRACKING_ENV: "off"}
    pods = [subprocess.Popen(["/bin/sh", "-c", script], cwd=root / "work", stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, start_new_session=True,
                             env={**environment, "JOB_COMPLETION_INDEX": str(index)}) for index in range(PODS)]
    return LocalJob(root, pods)


@pytest.fixture(scope="module")
def start_job(jobs) -> Iterator[Callable[[Path], LocalJob]]:
    """``start_pods`` for the multi-node Job under a given root; pods still running at the end are killed."""
    started: list[LocalJob] = []

    def start(root: Path) -> LocalJob:
        started.append(start_pods(one(jobs["multinode"], "Job"), root))
        return started[-1]

    yield start
    for pod in (pod for job in started for pod in job.pods if pod.poll() is None):
        for pid in process_tree(pod.pid):  # the shell, torchrun's agent, its workers (in sessions of their own)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        pod.wait()


@pytest.fixture(scope="module")
def multinode_job(start_job, tmp_path_factory) -> tuple[LocalJob, list[str]]:
    """The multi-node Job run once to its end on this machine, and its pods' outputs."""
    job = start_job(tmp_path_factory.mktemp("multinode"))
    return job, job.finish()
