"""The NVIDIA GPUs this machine shows, asked of the driver and not of a framework, and what a trainer does when its
framework cannot use them: both trainers, the tuner and the Makefile (which runs this file to choose TensorFlow's
wheels) share it. Standard library only, so that both environments, and the system Python, can run it.

A GPU is visible when ``nvidia-smi -L`` lists it (without nvidia-smi: when the driver lists it under
``/proc/driver/nvidia/gpus/``) and ``CUDA_VISIBLE_DEVICES`` does not hide it. A framework that cannot use a visible
GPU (a CPU-only wheel, CUDA libraries missing, a driver too old for the framework's CUDA) would otherwise train on
the CPU without a word: ``use_gpu`` says why, and how to fix it.
"""

from __future__ import annotations

import ctypes
import functools
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

NVIDIA_SMI_TIMEOUT_S = 30  # a driver in a bad state can hang nvidia-smi; seconds
PROC_GPUS = Path("/proc/driver/nvidia/gpus")  # one folder per GPU, named by its PCI bus id
LIBCUDA = "libcuda.so.1"  # the driver's CUDA library, which every CUDA build of a framework loads
# nvidia-smi -L: "GPU 0: NVIDIA H200 (UUID: GPU-8f0e...)"; MIG instances are indented below their GPU
SMI_LINE = re.compile(r"^GPU (\d+): (.+) \(UUID: (GPU-[0-9A-Za-z-]+)\)\s*$", re.M)


class DeviceError(ValueError):
    """``device='cuda'`` where the framework cannot train on a GPU: a user's setting or installation."""


@dataclass(frozen=True)
class Gpu:
    index: int  # nvidia-smi's, in PCI bus order
    name: str
    uuid: str  # GPU-...: names it in CUDA_VISIBLE_DEVICES whatever CUDA's device order

    def __str__(self) -> str:
        return f"GPU {self.index}: {self.name}"


def driver_gpus() -> list[Gpu]:
    """Every GPU the NVIDIA driver lists, CUDA_VISIBLE_DEVICES aside: ``nvidia-smi -L``, or the driver's /proc
    entries where nvidia-smi is not installed (or hangs)."""
    try:
        listing = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True,
                                 timeout=NVIDIA_SMI_TIMEOUT_S).stdout
    except (OSError, subprocess.TimeoutExpired):
        return proc_gpus()
    return [Gpu(int(m[1]), m[2], m[3]) for m in SMI_LINE.finditer(listing)]


def proc_gpus() -> list[Gpu]:
    """The GPUs of ``/proc/driver/nvidia/gpus/<bus id>/information`` ("Model:", "GPU UUID:" lines), in bus order."""
    folders = sorted(PROC_GPUS.iterdir()) if PROC_GPUS.is_dir() else []
    found = []
    for folder in folders:
        try:
            lines = (folder / "information").read_text().splitlines()
        except OSError:
            continue
        fields = {key.strip(): value.strip() for key, value in (line.split(":", 1) for line in lines if ":" in line)}
        if fields.get("GPU UUID", "").startswith("GPU-"):
            found.append(Gpu(len(found), fields.get("Model", "NVIDIA GPU"), fields["GPU UUID"]))
    return found


def select_visible(gpus: list[Gpu], visible_devices: str | None) -> list[Gpu]:
    """The ``gpus`` that a CUDA_VISIBLE_DEVICES value leaves to CUDA programs, in its order.

    Entries are indices (counted in nvidia-smi's order, which is CUDA's under CUDA_DEVICE_ORDER=PCI_BUS_ID and on
    machines whose GPUs are all alike) or UUID prefixes (GPU-...); like CUDA, the list ends at the first entry that
    names no GPU (so "" and "-1" hide them all) and at a repeated one.
    """
    if visible_devices is None:
        return gpus
    chosen: list[Gpu] = []
    for entry in (e.strip() for e in visible_devices.split(",")):
        if entry.isdigit():
            named = gpus[int(entry):int(entry) + 1]
        else:
            named = [g for g in gpus if entry.startswith("GPU-") and g.uuid.startswith(entry)]
        if len(named) != 1 or named[0] in chosen:
            break
        chosen.append(named[0])
    return chosen


def visible_gpus() -> list[Gpu]:
    """The GPUs that CUDA programs started from this process may use."""
    return select_visible(driver_gpus(), os.environ.get("CUDA_VISIBLE_DEVICES"))


def driver_problem(cuda_version: str) -> str | None:
    """Why the NVIDIA driver, as this process sees it, cannot run a framework built for CUDA ``cuda_version``
    ("12.5.1"): no driver library, a driver older than that CUDA major version, or CUDA failing to start; None when
    it can."""
    try:
        libcuda = ctypes.CDLL(LIBCUDA)
    except OSError:
        return f"the NVIDIA driver's {LIBCUDA} cannot be loaded here"
    version = ctypes.c_int()
    if libcuda.cuDriverGetVersion(ctypes.byref(version)) == 0:
        too_old = driver_too_old(version.value, cuda_version)
        if too_old:
            return too_old
    status = libcuda.cuInit(0)
    if status != 0:
        nodes = "" if list(Path("/dev").glob("nvidia[0-9]*")) else "; there is no device node /dev/nvidia*"
        return f"the NVIDIA driver cannot start CUDA (cuInit returned CUDA error {status}{nodes})"
    return None


def driver_too_old(driver_version: int, cuda_version: str) -> str | None:
    """The cause when a driver supporting CUDA ``driver_version`` (cuDriverGetVersion's 1000 * major + 10 * minor)
    cannot run a build for ``cuda_version``: the driver's CUDA runs builds of its own major version or older."""
    major, minor = driver_version // 1000, driver_version % 1000 // 10
    if major < int(cuda_version.split(".")[0]):
        return f"the NVIDIA driver supports CUDA {major}.{minor}, too old for this build's CUDA {cuda_version}"
    return None


def driver_fix(cuda_version: str) -> str:
    """What to do about a ``driver_problem``."""
    return (f"install an NVIDIA driver that supports CUDA {cuda_version.split('.')[0]} (nvidia-smi prints the CUDA "
            "version of the driver), and in a container pass the GPU through (docker run --gpus all, podman run "
            "--device nvidia.com/gpu=all)")


def use_gpu(device: str, framework: str, usable: bool, diagnose: Callable[[], tuple[str, str]]) -> bool:
    """Whether a trainer trains on the GPU for ``device`` (config.device: auto, cpu or cuda), given whether its
    ``framework`` (a title, for messages) finds a ``usable`` GPU; ``diagnose()`` gives (cause, fix) when it does not.

    Where the framework is blind to a GPU the driver shows, auto warns once per process, naming the cause and the
    fix, and trains on the CPU; cuda raises DeviceError with the same message (exit status 2). Without any visible
    GPU, auto is the CPU without a word and cuda a DeviceError.
    """
    if device == "cpu":
        return False
    if usable:
        return True
    gpus = visible_gpus()
    if not gpus:
        if device == "cuda":
            raise DeviceError(f"device='cuda' but {framework} finds no GPU and the NVIDIA driver shows none "
                              "(use device=auto or cpu)")
        return False
    cause, fix = diagnose()
    message = (f"{framework} cannot use the NVIDIA GPU{'s' * (len(gpus) > 1)} visible here "
               f"({', '.join(map(str, gpus))}): {cause}. Fix: {fix}")
    if device == "cuda":
        raise DeviceError(message)
    warn_once(f"warning: {message}. Training on the CPU (--device cpu trains there without this warning).")
    return False


@functools.cache
def warn_once(line: str) -> None:
    # once per process: a tuning worker builds a trainer per trial, and the reason stays the same
    print(line, file=sys.stderr, flush=True)


if __name__ == "__main__":
    # the Makefile's question: how many GPUs are visible (it installs TensorFlow's CUDA wheels when any are)
    print(len(visible_gpus()))
