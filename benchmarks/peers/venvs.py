"""Each peer's own venv (their pins clash with the project's), made once under CACHE and reused while its
requirements stay the same."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from benchmarks.peers import CACHE, PEER_PACKAGES, PIP_TIMEOUT_S, SHARED_PINS


def peer_venv(name: str) -> tuple[Path, str]:
    """(python, peer version) of the peer's venv under CACHE, made when missing or when its requirements changed."""
    venv = CACHE / name
    requirements = [*PEER_PACKAGES[name], *SHARED_PINS]
    python, marker = venv / "bin" / "python", venv / ".requirements"
    if not (python.exists() and marker.exists() and marker.read_text().split() == requirements):
        print(f"venv: {venv} ({' '.join(requirements)})", file=sys.stderr, flush=True)
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
        pip = subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *requirements],
                             capture_output=True, text=True, timeout=PIP_TIMEOUT_S)
        if pip.returncode != 0:
            raise RuntimeError(f"pip install into {venv} failed:\n{pip.stderr[-3000:]}")
        marker.write_text("\n".join(requirements) + "\n")
    version = subprocess.run([str(python), "-c", f"import importlib.metadata as m; print(m.version({name!r}))"],
                             capture_output=True, text=True, check=True, timeout=60).stdout.strip()
    return python, version
