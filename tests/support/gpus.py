"""A fake ``nvidia-smi``: the NVIDIA driver's listing of GPUs, which ``training.gpus`` reads, without a GPU. Put first
on PATH, it makes a machine look like one with GPUs that neither framework can use (this one has no driver)."""

from __future__ import annotations

from pathlib import Path

GPU_NAME = "NVIDIA H200"


def fake_uuid(index: int) -> str:
    return f"GPU-{index:08x}-0000-4000-8000-000000c0ffee"


def nvidia_smi_listing(count: int) -> str:
    """What ``nvidia-smi -L`` prints on a machine with ``count`` GPUs."""
    return "".join(f"GPU {i}: {GPU_NAME} (UUID: {fake_uuid(i)})\n" for i in range(count))


def write_nvidia_smi(folder: Path, listing: str) -> Path:
    """An executable ``folder/nvidia-smi`` that answers ``-L`` with ``listing``; with an empty listing it says what
    the real one says on a machine without GPUs, with its exit status 6."""
    script = folder / "nvidia-smi"
    if listing:
        body = f"cat <<'LISTING'\n{listing}LISTING\n"
    else:
        body = "echo 'No devices were found'\nexit 6\n"
    script.write_text(f"#!/bin/sh\n[ \"$1\" = -L ] || exit 2\n{body}")
    script.chmod(0o755)
    return script
