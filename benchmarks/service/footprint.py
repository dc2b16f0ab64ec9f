"""What serving weighs: a fresh venv with only the ``serve`` extra."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

from harness import REPO


def dir_size_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink()) / 1e6


def serve_venv_mb(workdir: Path) -> float:
    """Size of a fresh venv with only the `serve` extra's packages, pinned as in the images."""
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]["serve"]
    venv = workdir / "serve-venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    # install with this interpreter's pip into the new venv, so the venv holds no pip of its own to weigh
    pip = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check",
         "--ignore-installed", "--prefix", str(venv), "-c", str(REPO / "constraints.txt"), *deps],
        capture_output=True, text=True,
    )
    if pip.returncode != 0:
        raise RuntimeError(f"pip install into {venv} failed:\n{pip.stderr}")
    return dir_size_mb(venv)
