"""The GPUs the NVIDIA driver shows (``training.gpus``), judged without a framework, and what a trainer does with a GPU
its framework cannot use: warn once and train on the CPU (auto), or refuse (cuda). A fake nvidia-smi stands in for the
driver (tests/support/gpus.py)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from cifar10_pipeline.training import gpus
from cifar10_pipeline.training.gpus import DeviceError, Gpu
from tests.support.gpus import GPU_NAME, fake_uuid, write_nvidia_smi
from tests.support.paths import REPO

THREE = [Gpu(i, GPU_NAME, fake_uuid(i)) for i in range(3)]


def test_visible_gpus_are_those_nvidia_smi_lists(fake_gpus):
    uuids = fake_gpus(2)
    assert gpus.visible_gpus() == [Gpu(0, GPU_NAME, uuids[0]), Gpu(1, GPU_NAME, uuids[1])]
    assert str(gpus.visible_gpus()[1]) == f"GPU 1: {GPU_NAME}"


def test_no_gpu_when_nvidia_smi_finds_none(fake_gpus):
    fake_gpus(0)
    assert gpus.visible_gpus() == []


def test_mig_instances_and_other_lines_are_not_gpus(tmp_path, monkeypatch):
    listing = (f"GPU 0: NVIDIA A100-SXM4-80GB (UUID: {fake_uuid(0)})\n"
               "  MIG 3g.40gb     Device  0: (UUID: MIG-aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee)\n"
               f"GPU 1: NVIDIA A100-SXM4-80GB (UUID: {fake_uuid(1)})\n"
               "Some notice that the driver prints\n")
    write_nvidia_smi(tmp_path, listing)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert gpus.visible_gpus() == [Gpu(0, "NVIDIA A100-SXM4-80GB", fake_uuid(0)),
                                   Gpu(1, "NVIDIA A100-SXM4-80GB", fake_uuid(1))]


def test_without_nvidia_smi_the_drivers_proc_entries_count(tmp_path, monkeypatch):
    proc = tmp_path / "gpus"
    # folders named by PCI bus id, created out of order; one entry without a UUID is not a GPU
    for bus, uuid in (("0000:c1:00.0", fake_uuid(1)), ("0000:41:00.0", fake_uuid(0)), ("0000:e1:00.0", "")):
        (proc / bus).mkdir(parents=True)
        (proc / bus / "information").write_text(f"Model: \t\t {GPU_NAME}\nIRQ:   \t\t 42\nGPU UUID: \t {uuid}\n"
                                                f"Bus Location: \t {bus}\n")
    monkeypatch.setattr(gpus, "PROC_GPUS", proc)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no nvidia-smi
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert gpus.visible_gpus() == [Gpu(0, GPU_NAME, fake_uuid(0)), Gpu(1, GPU_NAME, fake_uuid(1))]


@pytest.mark.parametrize("value, expected", [
    (None, [0, 1, 2]),
    ("1", [1]),
    ("2,0", [2, 0]),  # CUDA's order is the variable's
    (" 1 , 2 ", [1, 2]),
    (fake_uuid(2), [2]),
    (fake_uuid(1)[:12], [1]),  # a unique UUID prefix
    ("GPU-0000000", []),  # a prefix of every UUID: names none
    ("", []),
    ("-1", []),
    ("0,7,1", [0]),  # the list ends at the first entry naming no GPU
    ("1,1,2", [1]),  # and at a repeated one
    ("NoDevFiles", []),
])
def test_cuda_visible_devices_leaves_what_cuda_would(value, expected):
    assert gpus.select_visible(THREE, value) == [THREE[i] for i in expected]


def test_visible_gpus_honour_cuda_visible_devices(fake_gpus, monkeypatch):
    uuids = fake_gpus(2)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", uuids[1])
    assert gpus.visible_gpus() == [Gpu(1, GPU_NAME, uuids[1])]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert gpus.visible_gpus() == []


def _not_called() -> tuple[str, str]:
    raise AssertionError("diagnosed a framework that needs no diagnosis")


def _blind() -> tuple[str, str]:
    return "the framework is a CPU-only build", "install its CUDA build"


def test_a_usable_gpu_is_used_and_cpu_is_cpu_whatever_the_driver_shows(fake_gpus):
    fake_gpus(1)
    assert gpus.use_gpu("auto", "Torch", True, _not_called) is True
    assert gpus.use_gpu("cuda", "Torch", True, _not_called) is True
    assert gpus.use_gpu("cpu", "Torch", True, _not_called) is False
    assert gpus.use_gpu("cpu", "Torch", False, _not_called) is False


def test_without_a_visible_gpu_auto_is_the_cpu_in_silence_and_cuda_is_refused(fake_gpus, capsys):
    fake_gpus(0)
    assert gpus.use_gpu("auto", "Torch", False, _not_called) is False
    assert capsys.readouterr().err == ""
    with pytest.raises(DeviceError, match=r"^device='cuda' but Torch finds no GPU and the NVIDIA driver shows none "
                                          r"\(use device=auto or cpu\)$"):
        gpus.use_gpu("cuda", "Torch", False, _not_called)


def test_a_gpu_the_framework_cannot_use_warns_once_naming_cause_and_fix(fake_gpus, capsys, fresh_warnings):
    fake_gpus(2)
    expected = (f"Torch cannot use the NVIDIA GPUs visible here (GPU 0: {GPU_NAME}, GPU 1: {GPU_NAME}): the framework "
                "is a CPU-only build. Fix: install its CUDA build")
    assert gpus.use_gpu("auto", "Torch", False, _blind) is False
    assert gpus.use_gpu("auto", "Torch", False, _blind) is False  # a second trainer in the same process
    assert capsys.readouterr().err.splitlines() == [
        f"warning: {expected}. Training on the CPU (--device cpu trains there without this warning)."]
    with pytest.raises(DeviceError) as refused:
        gpus.use_gpu("cuda", "Torch", False, _blind)
    assert str(refused.value) == expected


def test_a_missing_driver_library_is_a_driver_problem(monkeypatch):
    monkeypatch.setattr(gpus, "LIBCUDA", "libcuda-not-installed.so.1")
    assert gpus.driver_problem("12.5.1") == "the NVIDIA driver's libcuda-not-installed.so.1 cannot be loaded here"


@pytest.mark.parametrize("driver, build, too_old", [
    (12040, "13.0", True),  # cuDriverGetVersion 12040: CUDA 12.4
    (12040, "12.8", False),  # same major version: CUDA's minor version compatibility
    (13000, "12.5.1", False),
    (11080, "12.5.1", True),
])
def test_a_driver_is_too_old_for_a_newer_cuda_major_version(driver, build, too_old):
    cause = gpus.driver_too_old(driver, build)
    if too_old:
        assert cause == (f"the NVIDIA driver supports CUDA {driver // 1000}.{driver % 1000 // 10}, too old for this "
                         f"build's CUDA {build}")
    else:
        assert cause is None
    assert f"supports CUDA {build.split('.')[0]} " in gpus.driver_fix(build)


def test_the_module_runs_alone_and_prints_the_number_of_visible_gpus(fake_gpus):
    # the Makefile runs it with the system Python: -I -S, no site-packages and no project on the path
    fake_gpus(2)
    script = REPO / "src" / "cifar10_pipeline" / "training" / "gpus.py"
    result = subprocess.run([sys.executable, "-I", "-S", str(script)], capture_output=True, text=True, check=False)
    assert (result.returncode, result.stdout, result.stderr) == (0, "2\n", "")
