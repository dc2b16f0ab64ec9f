"""Which onnxruntime execution providers a session asks for: the configured ones, else the GPU when there is one."""

from __future__ import annotations

import onnxruntime as ort

# provider preference when none is configured: the GPU when this onnxruntime build and the machine have one
PREFERRED_PROVIDERS = ("CUDAExecutionProvider", "CPUExecutionProvider")


def check_providers(requested: tuple[str, ...]) -> None:
    """A ValueError naming each of ``requested`` that this onnxruntime build lacks (CUDA in a CPU-only build)."""
    available = ort.get_available_providers()
    missing = [p for p in requested if p not in available]
    if missing:
        raise ValueError(f"providers {missing} are not in this onnxruntime build (it has {available})")


def resolve_providers(requested: tuple[str, ...]) -> list[str]:
    """The providers to ask for: ``requested`` (each must exist in this build), else CUDA first, then CPU."""
    check_providers(requested)
    available = ort.get_available_providers()
    chosen = list(requested) or [p for p in PREFERRED_PROVIDERS if p in available]
    if "CUDAExecutionProvider" in chosen and hasattr(ort, "preload_dlls"):
        # onnxruntime-gpu[cuda,cudnn] gets CUDA and cuDNN from NVIDIA's wheels, whose libraries are not on
        # the loader's path: preload them, or the CUDA provider fails and onnxruntime falls back to CPU
        ort.preload_dlls()
    return chosen
