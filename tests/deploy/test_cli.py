"""python -m cifar10_pipeline.deploy.replicas: help, and clear errors (exit 1, no traceback) for what a user can get wrong."""

from __future__ import annotations

import subprocess
import sys

from tests.support.paths import REPO


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cifar10_pipeline.deploy.replicas", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=60)


def test_help_names_every_command():
    result = run("--help")
    assert result.returncode == 0
    for command in ("up", "down", "rollout", "status"):
        assert command in result.stdout
    up_help = run("up", "--help").stdout
    assert "--replicas" in up_help and "--check-inter-ms" in up_help and "PORT+i" in up_help


def test_down_rollout_and_status_without_a_running_stack_say_so(tmp_path):
    for args in (["down"], ["rollout", "--model", "m.onnx"], ["status"]):
        result = run("--state-dir", str(tmp_path), *args)
        assert result.returncode == 1, args
        assert f"no replicas are running from {tmp_path}" in result.stderr and "Traceback" not in result.stderr


def test_up_with_a_missing_model_file_says_so(tmp_path):
    result = run("--state-dir", str(tmp_path / "stack"), "up", "--model", str(tmp_path / "missing.onnx"))
    assert result.returncode == 1
    assert f"no model file {tmp_path / 'missing.onnx'}" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "stack").exists()  # nothing was started or written


def test_up_refuses_zero_replicas(tmp_path, old_model):
    result = run("--state-dir", str(tmp_path / "stack"), "up", "--model", str(old_model), "--replicas", "0")
    assert result.returncode == 1 and "replicas must be >= 1, got 0" in result.stderr
