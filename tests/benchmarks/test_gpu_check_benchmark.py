"""``make gpu-check`` (and ``make test-gpu``) without a GPU: exit 2 and one line here; with a GPU that the
frameworks cannot use (a fake ``nvidia-smi``), exit 1 at the first step; and its CPU rehearsal, every step run and
checked on the CPU, so that the script works the day a GPU is there."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from harness.report import BENCHMARKS_MD
from tests.support.paths import REPO


def gpu_check(tmp_path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "benchmarks.gpu_check", "--out", str(tmp_path / "out"), *args],
                          cwd=REPO, capture_output=True, text=True, timeout=900, env=env)


@pytest.mark.parametrize("args", [[], ["--preflight"]])
def test_without_a_gpu_it_exits_2_with_one_line(tmp_path, fake_gpus, args):
    fake_gpus(0)
    result = gpu_check(tmp_path, *args)
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr.strip().splitlines() == [
        "gpu-check: no NVIDIA GPU here (nvidia-smi -L lists none): nothing to check"]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("target", ["gpu-check", "test-gpu"])
def test_make_gpu_check_stops_before_installing_anything(fake_gpus, target):
    fake_gpus(0)
    result = subprocess.run(["make", "-s", target], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "pip" not in result.stdout + result.stderr
    assert result.stderr.splitlines()[0] == "gpu-check: no NVIDIA GPU here (nvidia-smi -L lists none): nothing to check"


def test_with_a_gpu_preflight_passes_and_the_first_step_fails_on_the_cpu(tmp_path, fake_gpus):
    fake_gpus(1)  # a GPU the driver lists and neither framework can use: this machine has no driver
    assert gpu_check(tmp_path, "--preflight").returncode == 0
    result = gpu_check(tmp_path)
    assert result.returncode == 1, result.stderr[-2000:]
    failure = result.stderr[result.stderr.index("gpu-check FAILED"):]
    assert failure.startswith("gpu-check FAILED: PyTorch training on cuda: exit 2"), failure
    assert not (tmp_path / "out" / "gpu-check.json").exists()


@pytest.mark.slow
def test_the_cpu_rehearsal_runs_and_checks_every_step(tmp_path):
    before = BENCHMARKS_MD.read_text()
    result = gpu_check(tmp_path, "--rehearse-on-cpu")
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / "out" / "gpu-check.json").read_text())
    assert set(report["train"]) == set(report["export"]) == {"torch", "tensorflow"}
    for framework, row in report["train"].items():
        assert row["device"] in ("cpu", "/CPU:0") and row["precision"] == "float32" and row["images_per_second"] > 0
        assert report["export"][framework]["top1_agreement"] >= 0.99
    assert report["tune"]["trials"] >= 3 and report["tune"]["devices"] == ["cpu"]
    serve = report["serve"]
    assert serve["swap"] == "served" and serve["self_test_max_abs_diff"] >= 0
    # a few small epochs may or may not earn the INT8 file its accuracy gate; either way the reason is given
    assert serve["int8"] == "served" or serve["int8"].startswith(("refused at export: error: ",
                                                                   "refused by the service: "))
    assert set(report["onnxruntime"]) == {"CPUExecutionProvider"}
    markdown = (tmp_path / "out" / "gpu-check.md").read_text()
    assert "| torch |" in markdown and "| tensorflow |" in markdown and "| CPUExecutionProvider |" in markdown
    assert BENCHMARKS_MD.read_text() == before
