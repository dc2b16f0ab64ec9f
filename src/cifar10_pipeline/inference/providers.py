"""Which onnxruntime execution providers a session asks for: the configured ones, else the GPU when there is one; and
why a session left out a provider it asked for."""

from __future__ import annotations

import ctypes
from pathlib import Path

import onnxruntime as ort

CUDA = "CUDAExecutionProvider"
OPENVINO = "OpenVINOExecutionProvider"
# short names that INFERENCE_PROVIDERS and cifar10-predict --providers take for onnxruntime's own (any case)
SHORT_NAMES = {"cpu": "CPUExecutionProvider", "cuda": CUDA, "openvino": OPENVINO}
# where a provider that is not in this build comes from
INSTALL_HINTS = {CUDA: "onnxruntime-gpu (the GPU image, or make install-serve-gpu)",
                 OPENVINO: "onnxruntime-openvino, which replaces onnxruntime (make install-openvino: .venv-openvino)"}
# provider preference when none is configured: the GPU when this onnxruntime build and the machine have one
PREFERRED_PROVIDERS = (CUDA, "CPUExecutionProvider")
# where onnxruntime keeps the providers it loads only when a session asks for them (CUDA, TensorRT, ...)
PROVIDER_LIBRARIES = Path(ort.__file__).parent / "capi"


def provider_names(requested: tuple[str, ...]) -> tuple[str, ...]:
    """``requested`` with each short name made onnxruntime's (``openvino`` -> ``OpenVINOExecutionProvider``)."""
    return tuple(SHORT_NAMES.get(p.lower(), p) for p in requested)


def check_providers(requested: tuple[str, ...]) -> None:
    """A ValueError naming each of ``requested`` (short names too) that this onnxruntime build lacks (CUDA in a
    CPU-only build), and where it comes from."""
    available = ort.get_available_providers()
    missing = [p for p in provider_names(requested) if p not in available]
    if missing:
        hints = "".join(f"; {p} comes with {INSTALL_HINTS[p]}" for p in missing if p in INSTALL_HINTS)
        raise ValueError(f"providers {missing} are not in this onnxruntime build (it has {available}){hints}")


def resolve_providers(requested: tuple[str, ...]) -> list[str]:
    """The providers to ask for: ``requested`` (short names made onnxruntime's; each must exist in this build),
    else CUDA first, then CPU."""
    check_providers(requested)
    requested = provider_names(requested)
    available = ort.get_available_providers()
    chosen = list(requested) or [p for p in PREFERRED_PROVIDERS if p in available]
    if CUDA in chosen and hasattr(ort, "preload_dlls"):
        # onnxruntime-gpu[cuda,cudnn] gets CUDA and cuDNN from NVIDIA's wheels, whose libraries are not on
        # the loader's path: preload them, or the CUDA provider fails and onnxruntime falls back to CPU
        ort.preload_dlls()
    return chosen


def provider_library(provider: str) -> Path:
    """The library onnxruntime loads ``provider`` from (CUDAExecutionProvider: libonnxruntime_providers_cuda.so)."""
    return PROVIDER_LIBRARIES / f"libonnxruntime_providers_{provider.removesuffix('ExecutionProvider').lower()}.so"


def not_started(requested: list[str] | tuple[str, ...], active: tuple[str, ...]) -> dict[str, str]:
    """Each provider of ``requested`` that a session left out of ``active``, with why. onnxruntime neither raises
    nor warns in Python when a provider cannot start (no GPU, a missing CUDA library): it logs the error on
    stderr and goes on with the next provider, the CPU."""
    return {p: why_not_started(p) for p in requested if p not in active}


def why_not_started(provider: str) -> str:
    """Why onnxruntime could not start ``provider``, as far as loading its library tells: the loader's error (what
    onnxruntime met, e.g. no ``libcuda.so.1`` where the driver is not mounted), else that it loads and the
    provider itself refused this machine."""
    library = provider_library(provider)
    if not library.is_file():
        return f"onnxruntime did not start it (it has no {library.name} to check); its own log says why"
    try:
        ctypes.CDLL(str(library))
    except OSError as e:
        return f"{library.name} cannot be loaded: {e}"
    return (f"{library.name} loads, but the provider did not start on this machine (no device visible, or a "
            "driver too old for it); onnxruntime's own log says why")
