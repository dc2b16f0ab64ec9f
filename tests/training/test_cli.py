"""``cifar10-train`` of both trainers (``--framework``): the smoke run, --help, user errors that exit 2 with a clear
message, --check, and a GPU the framework cannot use."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from cifar10_pipeline.training.run import Run
from tests.support.gpus import GPU_NAME
from tests.support.runs import tiny_config, train_cli


def test_device_cuda_without_a_gpu_exits_2_saying_so(tmp_path, framework):
    # CUDA_VISIBLE_DEVICES="" hides every GPU from both frameworks: this machine has none, whatever it has
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    args = ["--dataset", "synthetic", "--max-train-samples", "256", "--device", "cuda", "--runs-dir", str(tmp_path)]
    result = subprocess.run([sys.executable, "-m", "cifar10_pipeline.training", "--framework", framework.name, *args],
                            capture_output=True, text=True, env=env, check=False)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: device='cuda' but ") and "use device=auto or cpu" in last, last
    assert not any(tmp_path.iterdir())  # refused before a run directory was made


def test_a_gpu_the_framework_cannot_use_is_named_by_auto_and_refused_by_cuda(tmp_path, framework, fake_gpus):
    # the driver lists a GPU (a fake nvidia-smi) and neither framework can use it: this machine has no GPU and no driver
    fake_gpus(1)
    cause, fix = sys.modules[framework.load("trainer").__module__].why_no_gpu()
    message = f"{framework.title} cannot use the NVIDIA GPU visible here (GPU 0: {GPU_NAME}): {cause}. Fix: {fix}"
    command = [sys.executable, "-m", "cifar10_pipeline.training", "--framework", framework.name,
               "--dataset", "synthetic", "--dry-run", "--width", "8"]

    auto = subprocess.run([*command, "--runs-dir", str(tmp_path / "auto")], capture_output=True, text=True, check=False)
    assert auto.returncode == 0 and "Traceback" not in auto.stderr, auto.stderr[-2000:]
    assert [line for line in auto.stderr.splitlines() if line.startswith("warning: ")] == [
        f"warning: {message}. Training on the CPU (--device cpu trains there without this warning)."]
    assert "cpu" in Run.open(None, tmp_path / "auto").info["device"].lower()

    cuda = subprocess.run([*command, "--device", "cuda", "--runs-dir", str(tmp_path / "cuda")],
                          capture_output=True, text=True, check=False)
    assert cuda.returncode == 2 and "Traceback" not in cuda.stderr, cuda.stderr[-2000:]
    assert cuda.stderr.strip().splitlines()[-1] == f"error: {message}"
    assert not (tmp_path / "cuda").exists()  # refused before a run directory was made


def test_dry_run_smoke(tmp_path, framework, capsys):
    code, out, err = train_cli(framework, ["--dataset", "synthetic", "--dry-run", "--width", "8",
                                           "--runs-dir", str(tmp_path)], capsys)
    assert code == 0, err
    run = Run.open(None, tmp_path)
    assert f"{run.path}: test accuracy " in out
    assert len(run.metrics()) == 1 and run.config.max_train_samples == 512 and run.info["framework"] == framework.name


def test_help_lists_every_config_flag(framework, capsys):
    code, out, _ = train_cli(framework, ["--help"], capsys)
    assert code == 0
    for flag in ("--batch-size", "--lr", "--label-smoothing", "--crop-padding", "--tta", "--params", "--resume",
                 "--dry-run"):
        assert flag in out


@pytest.mark.parametrize("args, message", [
    (["--epochs", "abc"], "invalid int value: 'abc'"),
    (["--dataset", "imagenet"], "invalid choice: 'imagenet'"),
    (["--flip", "maybe"], "expected true or false"),
    (["--lr", "-1"], "lr=-1.0 must be > 0"),
    (["--image-size", "4"], "image_size=4 must be 0 (the data set's native size) or >= 8"),
    (["--params", "/nonexistent/params.json"], "does not exist"),
    (["--dataset", "folder", "--data-dir", "{tmp}/empty"], "is not a folder"),
    (["--dataset", "cifar10", "--data-dir", "{tmp}/empty"], "put it at"),
    (["--resume", "{tmp}/no-such-run"], "is not a run directory"),
    (["--resume", "{tmp}/x", "--epochs", "3"], "--resume continues a run with its saved config"),
    (["--resume", "{other_run}"], "was trained with 'other', not"),
])
def test_bad_arguments_exit_2_with_a_clear_message(tmp_path, framework, capsys, monkeypatch, args, message):
    # no network in tests: a CIFAR-10 download attempt must fail at once, so point it at a closed local port
    monkeypatch.setenv("CIFAR10_URL", "http://127.0.0.1:9/cifar-10-python.tar.gz")
    other = Run.create(tiny_config(tmp_path, run_name="other-run"), "other").path if "{other_run}" in args else ""
    code, _, err = train_cli(framework, [a.format(tmp=tmp_path, other_run=other) for a in args]
                             + ["--runs-dir", str(tmp_path / "runs")], capsys)
    assert code == 2, err
    assert message in err


def test_check_builds_what_training_needs_and_trains_nothing(tmp_path, framework, capsys):
    code, out, err = train_cli(framework, ["--dataset", "synthetic", "--width", "8", "--check",
                                           "--runs-dir", str(tmp_path / "runs")], capsys)
    assert code == 0, err
    assert out.startswith(f"ok: {framework.name} can train on synthetic (8000 training images, 32x32x3) on "), out
    assert not (tmp_path / "runs").exists()  # no run directory, no MLflow store


@pytest.mark.parametrize("args, message", [
    (["--lr", "-1"], "lr=-1.0 must be > 0"),
    (["--dataset", "folder", "--data-dir", "{tmp}/empty"], "is not a folder"),
    (["--resume", "{tmp}/no-such-run"], "is not a run directory"),
])
def test_check_exits_2_on_what_would_stop_training(tmp_path, framework, capsys, args, message):
    code, out, err = train_cli(framework, [a.format(tmp=tmp_path) for a in args] + ["--check"], capsys)
    assert code == 2 and message in err and "ok:" not in out, err
