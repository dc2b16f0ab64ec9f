"""podman as .ci/containers.sh sets it up: its configuration and storage under CONTAINERS_WORK."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

WORK = Path(os.environ.get("CONTAINERS_WORK", "/tmp/containers-ci"))  # where .ci/containers.sh builds
CPU_IMAGE = "localhost/cifar10-serve:ci"  # the tag .ci/containers.sh gives the CPU image
BUILD_HINT = "build it with: make image (.ci/containers.sh --build-cpu MODEL)"


def environment() -> dict[str, str]:
    """The environment podman needs to find the images .ci/containers.sh built (its storage and settings)."""
    return {**os.environ, "CONTAINERS_CONF": str(WORK / "containers.conf"),
            "CONTAINERS_STORAGE_CONF": str(WORK / "storage.conf")}


def available() -> bool:
    """podman is installed and .ci/containers.sh has configured its storage on this machine."""
    return shutil.which("podman") is not None and (WORK / "storage.conf").is_file()


def podman(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run ``podman ARGS`` and capture its output; with ``check``, a failure raises with podman's message."""
    result = subprocess.run(["podman", *args], check=False, env=environment(), capture_output=True, text=True,
                            timeout=timeout)
    if check and result.returncode != 0:
        raise RuntimeError(f"podman {' '.join(args)} failed ({result.returncode}): {result.stderr.strip()}")
    return result


def image_size_mb(image: str = CPU_IMAGE) -> float | None:
    """The image's size, or None when podman or the image is not there."""
    if not available():
        return None
    result = podman("image", "inspect", "--format", "{{.Size}}", image, check=False)
    return int(result.stdout) / 1e6 if result.returncode == 0 else None


def require_image(image: str) -> None:
    """Fail with what to do when podman, its storage or ``image`` is missing."""
    if shutil.which("podman") is None:
        raise RuntimeError(f"podman is not installed; {BUILD_HINT}")
    if not available() or podman("image", "exists", image, check=False).returncode != 0:
        raise RuntimeError(f"no image {image} in {WORK}; {BUILD_HINT}")
