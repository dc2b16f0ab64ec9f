"""Tuning on a machine with several GPUs: one worker per visible GPU unless WORKERS says otherwise, each worker given
its own GPU through CUDA_VISIBLE_DEVICES (in turn when there are more workers than GPUs) and saying which. The GPUs are
a fake nvidia-smi's; the frameworks cannot use them here, so the trials train on the CPU."""

from __future__ import annotations

import re
import subprocess

import pytest

from cifar10_pipeline.training.gpus import Gpu
from cifar10_pipeline.training.tuning.config import build_parser, tune_config_from_args
from cifar10_pipeline.training.tuning.workers import assign_gpus
from tests.support.gpus import GPU_NAME, fake_uuid
from tests.support.make import dry_run
from tests.support.paths import REPO
from tests.training.tuning.conftest import SMALL, TRIAL_LINE, cli

WORKER_LINE = re.compile(r"^worker (\S+-\d+): (.+) \(CUDA_VISIBLE_DEVICES=(\S+)\)$", re.M)


def test_workers_take_the_visible_gpus_in_turn():
    a, b = Gpu(0, GPU_NAME, fake_uuid(0)), Gpu(1, GPU_NAME, fake_uuid(1))
    assert assign_gpus(2, [a, b]) == [a, b]
    assert assign_gpus(3, [a, b]) == [a, b, a]
    assert assign_gpus(1, [a, b]) == [a]
    assert assign_gpus(2, []) == [None, None]


@pytest.mark.parametrize("gpus, args, workers", [
    (2, [], 2),
    (1, [], 1),
    (0, [], 1),
    (2, ["--workers", "3"], 3),
    (2, ["--workers", "1"], 1),
    (2, ["--device", "cpu"], 1),  # one CPU process already uses every core
])
def test_workers_default_to_one_per_visible_gpu(fake_gpus, gpus, args, workers):
    fake_gpus(gpus)
    assert tune_config_from_args(build_parser().parse_args([*SMALL, *args])).workers == workers


def test_make_passes_workers_only_when_set():
    assert "--workers" not in dry_run("tune-torch")[-1].split()
    assert "--workers 3" in dry_run("tune-torch", "WORKERS=3")[-1]


@pytest.mark.slow
def test_each_worker_trains_with_its_own_gpu_and_says_which(tmp_path, fake_gpus):
    uuids = fake_gpus(2)
    args = [*SMALL, "--epochs", "1", "--max-train-samples", "500", "--trials", "2", "--pruner", "none",
            "--no-final-test", "--studies-dir", str(tmp_path / "studies"), "--best", str(tmp_path / "best.json")]
    result = subprocess.run(cli(*args), cwd=REPO, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    assert ", 2 worker(s)," in result.stdout
    # each line is the worker's own view of the GPUs: its CUDA_VISIBLE_DEVICES leaves it one
    said = WORKER_LINE.findall(result.stdout)
    assert sorted((gpu, uuid) for _, gpu, uuid in said) == [(f"GPU 0: {GPU_NAME}", uuids[0]),
                                                            (f"GPU 1: {GPU_NAME}", uuids[1])]
    workers = {worker for worker, _, _ in said}
    assert len(workers) == 2
    assert len(TRIAL_LINE.findall(result.stdout)) == 2
    assert set(re.findall(r", (\S+-\d+)\] ", result.stdout)) <= workers  # the trial lines name the same workers
