"""Which code trained a run: run.json's ``source`` entry and the MLflow run's source tags.

The config says what was asked for; this says which copy of this package carried it out: the folder it was imported
from, its files' digest, the installed distribution's version and, when the folder lies in a git work tree, the
commit checked out and whether the package's files differ from it. The digest tells two runs of one config apart
when the code changed in between, git or not (an installed wheel, a container), and shows a run that imported
another checkout of the package than the one meant (``PYTHONPATH``, an editable install elsewhere).
"""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path
from typing import Any

import cifar10_pipeline
from cifar10_pipeline.contract import project_version

PACKAGE_DIR = Path(cifar10_pipeline.__file__).resolve().parent
# MLflow's own tag for a run's commit: its UI shows it with the run
GIT_COMMIT_TAG = "mlflow.source.git.commit"
# onnxruntime-web's files (web.ORT_DIR, named here since training does not import the web package), which `make web`
# copies from npm's tree into the package (git ignores them): another project's release, pinned by
# package-lock.json, that training never reads; hashing them would call a run resumed after `make web` one by other
# code
VENDORED = ("web/ort",)


def describe(package_dir: Path = PACKAGE_DIR) -> dict[str, Any]:
    """{package, files_sha256, version[, git_commit, git_dirty]} of the package in ``package_dir``; the git keys
    only where git runs and the folder lies in a work tree."""
    source = {"package": str(package_dir), "files_sha256": files_digest(package_dir), "version": project_version()}
    try:
        commit = _git(package_dir, "rev-parse", "HEAD")
        changes = _git(package_dir, "status", "--porcelain", "--", ".")
    except (OSError, subprocess.SubprocessError):  # no git here, or not a work tree (an installed wheel)
        return source
    return {**source, "git_commit": commit, "git_dirty": bool(changes)}


def label(code: dict[str, Any]) -> str:
    """A ``describe`` entry in a few words: its folder, and its commit (or, outside git, its files' digest)."""
    commit = code.get("git_commit")
    if commit is None:
        return f"{code['package']}, files {code['files_sha256'][:12]}"
    return f"{code['package']}, commit {commit[:12]}{' with changes' if code.get('git_dirty') else ''}"


def files_digest(package_dir: Path) -> str:
    """SHA-256 over every file under ``package_dir`` (relative path and bytes, in path order) but Python's bytecode
    caches, which the interpreter writes as it imports, and the ``VENDORED`` folders."""
    digest = hashlib.sha256()
    for path in sorted(p for p in package_dir.rglob("*") if p.is_file() and _hashed(p.relative_to(package_dir))):
        name = path.relative_to(package_dir).as_posix().encode()
        digest.update(len(name).to_bytes(8, "big") + name)
        data = path.read_bytes()
        digest.update(len(data).to_bytes(8, "big") + data)
    return digest.hexdigest()


def _hashed(relative: Path) -> bool:
    return "__pycache__" not in relative.parts and not any(relative.is_relative_to(v) for v in VENDORED)


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True,
                          timeout=30).stdout.strip()
