"""The multi-node Job's run: every pod trains the run named after the Job, and pod 0 exports that very run. The
Job's script runs here with stub programs, and for real as its two pods on this machine (``conftest.start_job``:
torchrun's c10d rendezvous on loopback, gloo on the CPU), where a worker killed with kill -9 makes torchrun restart
the group, which continues the run from its checkpoint."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from cifar10_pipeline.model.torch_net import load_model_file
from cifar10_pipeline.training.run import Run
from tests.deploy.kubernetes.jobs.conftest import PARAMS, PODS
from tests.support.jobs import option, stubbed_calls
from tests.support.kubernetes import one
from tests.support.runs import torchrun_workers, without_timings


def test_every_pod_trains_the_run_named_after_the_job_and_pod_0_exports_it(jobs, tmp_path):
    job = one(jobs["multinode"], "Job")
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "best_params.json").write_text("{}")
    run = f"{tmp_path}/work/runs/torch-cifar10-job-0f9e"
    pods = [stubbed_calls(job, tmp_path, "0f9e", JOB_COMPLETION_INDEX=str(i)) for i in range(PODS)]
    for calls in pods:
        assert calls["cifar10-train"] == ["--framework", "torch", "--dataset", "cifar10", "--device", "cuda",
                                          "--runs-dir", f"{tmp_path}/work/runs", "--run-name", Path(run).name,
                                          "--params", f"{tmp_path}/work/best_params.json", "--check"]
        assert calls["torchrun"][calls["torchrun"].index("--framework"):] == calls["cifar10-train"][:-1]
    assert pods[0]["cifar10-export"][:2] == ["--run", run]  # not LAST.json's run: another Job's may start meanwhile
    assert "cifar10-export" not in pods[1]
    other = stubbed_calls(job, tmp_path, "7c1d", JOB_COMPLETION_INDEX="0")  # another Job: a run of its own
    assert option(other["cifar10-export"], "--run") == f"{tmp_path}/work/runs/torch-cifar10-job-7c1d"


@pytest.mark.slow
def test_the_pods_train_one_group_run_and_pod_0_exports_it(multinode_job):
    job, outputs = multinode_job
    run = Run.open(job.run)
    assert run.info["status"] == "finished" and run.info["backend"] == "gloo"
    assert run.config.replicas == PODS and run.config.epochs == PARAMS["epochs"]  # one group, the tuned params
    model = job.root / "models" / "model.onnx"
    assert "wrote" not in outputs[1] and model.is_file()  # pod 0 alone exports
    images = np.random.default_rng(0).integers(0, 256, (16, 32, 32, 3), dtype=np.uint8)
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    (logits,) = session.run(None, {session.get_inputs()[0].name: images})
    with torch.inference_mode():
        expected = load_model_file(job.run / "model.pt")(torch.from_numpy(images)).numpy()
    np.testing.assert_allclose(logits, expected, atol=1e-4)  # the file is this run's model


@pytest.mark.slow
def test_a_worker_killed_on_one_pod_restarts_the_group_which_continues_the_run(multinode_job, start_job, tmp_path):
    """kill -9 of pod 1's worker after the first epoch's checkpoint: both pods' torchrun agents restart their
    workers, the group meets again, and rank 0 (on either pod) finds the Job's run by its name and resumes it; the
    model and metrics are the uninterrupted Job's, bit for bit."""
    job = start_job(tmp_path)
    checkpoint = job.run / "checkpoint.pt"
    deadline = time.monotonic() + 300
    while not checkpoint.is_file():
        assert all(pod.poll() is None for pod in job.pods) and time.monotonic() < deadline
        time.sleep(0.02)
    (worker,) = torchrun_workers(job.pods[1].pid).values()
    os.kill(worker, signal.SIGKILL)
    outputs = job.finish()
    assert any(f"after epoch 1/{PARAMS['epochs']}" in out and "resuming" in out for out in outputs), outputs
    uninterrupted = Run.open(multinode_job[0].run)
    resumed = Run.open(job.run)
    assert without_timings(resumed.metrics()) == without_timings(uninterrupted.metrics())
    expected = load_model_file(uninterrupted.path / "model.pt").state_dict()
    for name, value in load_model_file(resumed.path / "model.pt").state_dict().items():
        assert torch.equal(value, expected[name]), name
    assert (job.root / "models" / "model.onnx").is_file()
