"""Which code trained a run (``training.source``): the package's files' digest, and its git commit where it lies in a
work tree."""

from __future__ import annotations

import subprocess
from pathlib import Path

import cifar10_pipeline
from cifar10_pipeline.training import source


def package(root: Path) -> Path:
    """A small package folder: two modules, one in a subfolder, and a bytecode cache."""
    pkg = root / "pkg"
    (pkg / "sub" / "__pycache__").mkdir(parents=True)
    (pkg / "a.py").write_text("A = 1\n")
    (pkg / "sub" / "b.py").write_text("B = 2\n")
    (pkg / "sub" / "__pycache__" / "b.cpython-311.pyc").write_bytes(b"\x00cache")
    return pkg


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args], cwd=cwd, check=True,
                          capture_output=True, text=True).stdout.strip()


def test_the_digest_changes_with_any_file_s_bytes_or_name_but_not_with_bytecode(tmp_path):
    pkg = package(tmp_path)
    first = source.files_digest(pkg)
    (pkg / "sub" / "__pycache__" / "a.cpython-311.pyc").write_bytes(b"\x00another cache")
    assert source.files_digest(pkg) == first
    (pkg / "a.py").write_text("A = 2\n")
    changed = source.files_digest(pkg)
    assert changed != first
    (pkg / "a.py").rename(pkg / "c.py")
    assert source.files_digest(pkg) not in (first, changed)
    (pkg / "c.py").rename(pkg / "a.py")
    assert source.files_digest(pkg) == changed
    (pkg / "data.json").write_text("{}")  # not only modules: any file the package reads
    assert source.files_digest(pkg) != changed


def test_the_digest_leaves_out_the_onnxruntime_web_files_that_make_web_copies_in(tmp_path):
    pkg = package(tmp_path)
    (pkg / "web").mkdir()
    (pkg / "web" / "runtime.mjs").write_text("export {};\n")
    first = source.files_digest(pkg)
    (pkg / "web" / "ort").mkdir()
    (pkg / "web" / "ort" / "ort.wasm.min.mjs").write_text("// onnxruntime-web\n")
    assert source.files_digest(pkg) == first
    (pkg / "web" / "ortho.mjs").write_text("export {};\n")  # the project's own file beside it, however named
    assert source.files_digest(pkg) != first


def test_a_package_in_a_git_work_tree_names_its_commit_and_whether_its_files_differ_from_it(tmp_path):
    pkg = package(tmp_path)
    (tmp_path / ".gitignore").write_text("__pycache__/\n")
    git(tmp_path, "init", "-q")
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-q", "-m", "first")
    clean = source.describe(pkg)
    assert clean["git_commit"] == git(tmp_path, "rev-parse", "HEAD") and clean["git_dirty"] is False
    assert clean["package"] == str(pkg) and clean["files_sha256"] == source.files_digest(pkg)
    (tmp_path / "elsewhere.txt").write_text("outside the package")  # the work tree changes, the package does not
    assert source.describe(pkg)["git_dirty"] is False
    (pkg / "sub" / "b.py").write_text("B = 3\n")
    dirty = source.describe(pkg)
    assert dirty["git_dirty"] is True and dirty["git_commit"] == clean["git_commit"]
    assert source.label(dirty) == f"{pkg}, commit {clean['git_commit'][:12]} with changes"


def test_outside_git_only_the_digest_names_the_code(tmp_path, monkeypatch):
    pkg = package(tmp_path)
    described = source.describe(pkg)  # tmp_path lies in no work tree
    assert "git_commit" not in described and "git_dirty" not in described
    assert source.label(described) == f"{pkg}, files {source.files_digest(pkg)[:12]}"
    git(tmp_path, "init", "-q")
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-q", "-m", "first")
    assert "git_commit" in source.describe(pkg)
    monkeypatch.setenv("PATH", str(tmp_path / "no-such-folder"))  # the same work tree on a machine without git
    assert source.describe(pkg) == described


def test_the_package_described_by_default_is_the_one_imported():
    described = source.describe()
    assert described["package"] == str(Path(cifar10_pipeline.__file__).resolve().parent)
    assert described["files_sha256"] == source.files_digest(Path(cifar10_pipeline.__file__).resolve().parent)
