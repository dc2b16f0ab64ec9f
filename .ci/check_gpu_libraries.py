"""Whether the GPU serving image could run onnxruntime's CUDA provider, checked inside it on a machine without a GPU:
.ci/containers.sh mounts this file into the image and runs it with the image's Python. It prints what it found and
exits 1, one line per problem, when
- a shared library that onnxruntime's CUDA or TensorRT provider, or a library of NVIDIA's wheels, needs does not
  resolve with the wheels' library folders on the loader's path (ldd), other than the exceptions below;
- onnxruntime.preload_dlls(), which the service calls before it asks for CUDA, prints a failure (it prints and
  carries on), or leaves one of the libraries it loads unloaded (it says nothing about the cuDNN, cuFFT and NVRTC
  ones it could not load);
- the CUDA major version onnxruntime-gpu was built for is not that of the CUDA runtime wheel in the image.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import io
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import onnxruntime as ort
from onnxruntime.capi import build_and_package_info

# the driver's library: the NVIDIA container toolkit mounts it from the host where there is a GPU; no image has it
DRIVER_LIBRARY = "libcuda.so.1"
# TensorRT's own libraries: onnxruntime-gpu's wheel carries a TensorRT provider, but the image leaves TensorRT out:
# the service asks for CUDA, then the CPU, never TensorRT, whose wheels would add gigabytes. What else that provider
# needs (CUDA, cuBLAS, cuDNN) must resolve all the same.
TENSORRT_LIBRARY = re.compile(r"lib(nvinfer|nvonnxparser)[\w.]*\.so[\d.]*")
NOT_FOUND = re.compile(r"^\s*(\S+) => not found$", re.MULTILINE)

ORT = Path(ort.__file__).parent
CUDA_PROVIDER = ORT / "capi" / "libonnxruntime_providers_cuda.so"
NVIDIA = ORT.parent / "nvidia"  # NVIDIA's wheels install their libraries in nvidia/<package>/lib


def unresolved_libraries() -> list[str]:
    """What ldd cannot find for onnxruntime's provider libraries and NVIDIA's, the allowed exceptions left out."""
    problems = [] if CUDA_PROVIDER.is_file() else [f"no {CUDA_PROVIDER}: this onnxruntime has no CUDA provider"]
    folders = sorted(NVIDIA.glob("*/lib"))
    libraries = sorted(ORT.glob("capi/libonnxruntime_providers_*.so")) + sorted(
        p for folder in folders for p in folder.glob("*.so*"))
    environment = {**os.environ, "LD_LIBRARY_PATH": ":".join(map(str, folders))}
    for library in libraries:
        result = subprocess.run(["ldd", str(library)], env=environment, capture_output=True, text=True)
        if result.returncode != 0:
            problems.append(f"ldd {library} failed: {result.stderr.strip()}")
            continue
        missing = [name for name in NOT_FOUND.findall(result.stdout)
                   if name != DRIVER_LIBRARY and not TENSORRT_LIBRARY.fullmatch(name)]
        if missing:
            problems.append(f"{library} needs {', '.join(missing)}, not found")
    print(f"   ldd: {len(libraries)} libraries (onnxruntime's providers, NVIDIA's wheels in "
          f"{', '.join(f.parent.name for f in folders)}); {DRIVER_LIBRARY} and TensorRT's own may be missing")
    return problems


def preload_failures() -> list[str]:
    """What onnxruntime.preload_dlls() printed or warned, and each library of its list it did not load."""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed), warnings.catch_warnings(record=True) as warned:
        warnings.simplefilter("always")
        ort.preload_dlls()
    # the list preload_dlls works through, from onnxruntime itself: a private function, so a release without it
    # fails here rather than checking nothing
    expected = [ORT.parent.joinpath(*parts) for parts in ort._get_nvidia_dll_paths(is_windows=False)]
    maps = Path("/proc/self/maps").read_text()
    unloaded = [path for path in expected if os.path.realpath(path) not in maps]
    print(f"   preload_dlls: {len(expected) - len(unloaded)} of {len(expected)} libraries loaded "
          f"({', '.join(path.name for path in expected)})")
    return ([f"preload_dlls: {line}" for line in printed.getvalue().splitlines() if line.strip()]
            + [f"preload_dlls warned: {w.message}" for w in warned]
            + [f"preload_dlls did not load {path}" for path in unloaded])


def cuda_major_mismatch() -> list[str]:
    """onnxruntime-gpu's CUDA major version against the CUDA runtime wheel's (nvidia-cuda-runtime from CUDA 13 on,
    nvidia-cuda-runtime-cuNN before)."""
    built_for = build_and_package_info.cuda_version
    runtimes = {d.metadata["Name"]: d.version for d in importlib.metadata.distributions()
                if re.fullmatch(r"nvidia-cuda-runtime(-cu\d+)?", d.metadata["Name"].lower())}
    print(f"   CUDA: {build_and_package_info.package_name} {ort.__version__} built for {built_for}, runtime wheels "
          f"{runtimes}")
    if len(runtimes) != 1:
        return [f"expected one CUDA runtime wheel (nvidia-cuda-runtime), found {runtimes or 'none'}"]
    (name, version), = runtimes.items()
    if built_for.split(".")[0] != version.split(".")[0]:
        return [f"{build_and_package_info.package_name} is built for CUDA {built_for}, the image has {name} {version}"]
    return []


def main() -> int:
    problems = [] if "CUDAExecutionProvider" in ort.get_available_providers() else [
        f"onnxruntime has no CUDA provider: {ort.get_available_providers()}"]
    problems += unresolved_libraries() + preload_failures() + cuda_major_mismatch()
    for problem in problems:
        print(f"FAIL: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
