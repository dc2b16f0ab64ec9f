"""The arrows between the packages, read from every import in the repository: the folder layout is the architecture.

training -> model, contract, tracking; export -> model, contract, tracking, web and the run directory, config and
data sets of training (never its trainers); tracking (MLflow) -> contract only, so it imports no trainer or exporter;
inference -> contract, web; model -> contract; contract, web and deploy -> nothing of the project (web: the browser
side's files, which the service serves and the export's browser target runs). The
atomic file writer (``files``, standard library only) serves whoever writes files; ``training.gpus``, the GPU check
of both trainers and the tuner, is standard library only too.

Beside ``src/``, not installed: ``harness`` (what tests, benchmarks and reliability share: no pytest), ``reliability``
-> harness, ``tests`` -> harness, reliability; ``benchmarks`` -> harness (a benchmark that is a package imports its
own modules, no other benchmark's); ``mutation`` (``make mutation``) -> harness. Nothing imports ``benchmarks`` or
``mutation``, and the project imports none of them.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.support.imports import imported_modules, imports_of, module_name
from tests.support.paths import REPO

PROJECT = "cifar10_pipeline"
SOURCE = REPO / "src" / PROJECT
PACKAGES = ("contract", "model", "training", "export", "inference", "deploy", "web", "tracking")
# package -> the project's modules it may import (prefixes), besides its own
ALLOWED = {
    "contract": (),
    "model": ("contract", "files"),
    "training": ("model", "contract", "files", "tracking"),
    "export": ("model", "contract", "files", "tracking", "training.run", "training.config", "training.datasets",
               "web"),
    "inference": ("contract", "web"),
    "deploy": (),  # it runs the serving image; it imports none of it
    "web": (),  # files for browsers, and the standard library naming them
    "tracking": ("contract",),  # the trainers and the export call it, never the other way
}


def test_every_package_has_its_rule():
    assert sorted(p.name for p in SOURCE.iterdir() if (p / "__init__.py").is_file()) == sorted(PACKAGES)
    assert set(ALLOWED) == set(PACKAGES)
    assert sorted(p.name for p in SOURCE.glob("*.py")) == ["__init__.py", "files.py"]


@pytest.mark.parametrize("module", ["files.py", "training/gpus.py", "tracking/settings.py"])
def test_the_file_writer_and_the_gpu_check_import_the_standard_library_only(module):
    # gpus.py: both trainers' environments import it, and the Makefile runs it with the system Python; tracking's
    # settings: the config reads its default from there, and importing the config must not import MLflow
    imported = {name.split(".")[0] for name in imports_of(SOURCE / module)}
    assert imported and imported <= set(sys.stdlib_module_names)


def _within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == f"{PROJECT}.{p}" or name.startswith(f"{PROJECT}.{p}.") for p in prefixes)


@pytest.mark.parametrize("package", PACKAGES)
def test_packages_import_only_along_the_arrows(package):
    files = sorted((SOURCE / package).rglob("*.py"))
    assert SOURCE / package / "__init__.py" in files  # the scan looks at the real package
    crossings = []
    for path in files:
        for name, line in imports_of(path).items():
            if name.split(".")[0] in PACKAGES:  # the pre-src layout's top-level names
                crossings.append(f"{path.relative_to(REPO)}:{line} imports {name}, not of this layout")
            if _within(name, (*PACKAGES, "files")) and not _within(name, (package, *ALLOWED[package])):
                crossings.append(f"{path.relative_to(REPO)}:{line} imports {name}")
    assert crossings == []


def test_the_import_scanner_sees_every_kind_of_import():
    source = ("import os\nimport numpy as np, cifar10_pipeline.inference.app\n"
              "from cifar10_pipeline.training.datasets import load_dataset\n"
              "from . import sibling\nfrom ..export import writer\n"
              "def later():\n    from flask import Flask\n")
    assert imported_modules(source, "cifar10_pipeline.inference.model") == {
        "os": 1, "numpy": 2, "cifar10_pipeline.inference.app": 2,
        "cifar10_pipeline.training.datasets.load_dataset": 3, "cifar10_pipeline.inference.sibling": 4,
        "cifar10_pipeline.export.writer": 5, "flask.Flask": 7}
    assert imported_modules("from . import base\n", "cifar10_pipeline.training.datasets.__init__") == {
        "cifar10_pipeline.training.datasets.base": 1}
    assert module_name(SOURCE / "training" / "datasets" / "__init__.py") == f"{PROJECT}.training.datasets.__init__"


# the repository's top-level folders of Python code -> the top-level modules their files must not import
FORBIDDEN = {
    "src": ("harness", "reliability", "benchmarks", "tests", "mutation"),
    "harness": ("reliability", "benchmarks", "tests", "mutation", "pytest", "_pytest"),
    "reliability": ("benchmarks", "tests", "mutation"),
    # each benchmark stands alone (a benchmark that is a package imports its own modules): what they share is harness's
    "benchmarks": ("reliability", "benchmarks", "tests", "mutation"),
    "tests": ("benchmarks", "mutation"),  # the benchmarks are run as commands, and what they write is read
    "mutation": ("reliability", "benchmarks", "tests"),  # make mutation runs the tests with mutmut, never imports them
}


def forbidden(imports: dict[str, int], banned: tuple[str, ...], own: str | None = None) -> dict[str, int]:
    """The ``imports`` (name -> line) whose top-level module is ``banned``, but for those of the package ``own``."""
    return {name: line for name, line in imports.items()
            if name.split(".")[0] in banned and not (own and (name == own or name.startswith(own + ".")))}


def own_package(path: Path) -> str | None:
    """``benchmarks.<name>`` for a module of a benchmark that is a package (benchmarks/<name>/...), else None."""
    parts = path.relative_to(REPO).parts
    return f"benchmarks.{parts[1]}" if parts[0] == "benchmarks" and len(parts) > 2 else None


def test_every_folder_of_python_code_has_its_rule():
    packages = {path.name for path in REPO.iterdir() if (path / "__init__.py").is_file()}  # importable from the root
    assert packages | {"src"} == set(FORBIDDEN) and not list(REPO.glob("*.py"))


@pytest.mark.parametrize("folder", FORBIDDEN)
def test_the_folders_import_each_other_only_along_the_arrows(folder):
    files = sorted((REPO / folder).rglob("*.py"))
    assert files  # the scan looks at a real folder
    crossings = [f"{path.relative_to(REPO)}:{line} imports {name}" for path in files
                 for name, line in forbidden(imports_of(path), FORBIDDEN[folder], own_package(path)).items()]
    assert crossings == []


def test_a_forbidden_folder_import_is_found():
    # the rule catches a test importing a benchmark, the harness importing pytest and the project importing the
    # harness, so an empty list above means something; a test importing the harness or reliability passes
    test = imported_modules("from benchmarks.rollout import verdicts\nfrom harness.server import served\n"
                            "from reliability import fuzz\n", "tests.deploy.test_replicas")
    assert forbidden(test, FORBIDDEN["tests"]) == {"benchmarks.rollout.verdicts": 1}
    harness = imported_modules("import json\nimport pytest\n", "harness.server")
    assert forbidden(harness, FORBIDDEN["harness"]) == {"pytest": 2}
    # a benchmark package's modules import each other, and no other benchmark
    peers = REPO / "benchmarks" / "peers" / "servers.py"
    bench = imported_modules("from benchmarks.peers import Counts\nfrom benchmarks.service import FULL\n"
                             "from benchmarks import peers\n", "benchmarks.peers.servers")
    assert forbidden(bench, FORBIDDEN["benchmarks"], own_package(peers)) == {"benchmarks.service.FULL": 2}
    assert own_package(REPO / "benchmarks" / "train.py") is None
    project = imported_modules("from harness import REPO\n", f"{PROJECT}.export.pipeline")
    assert forbidden(project, FORBIDDEN["src"]) == {"harness.REPO": 1}


def test_a_crossing_is_found():
    # the scan and the rule together catch a forbidden import, so an empty list above means something
    source = "from cifar10_pipeline.training.loop import train\n"
    names = imported_modules(source, "cifar10_pipeline.export.pipeline")
    crossing = [n for n in names if not _within(n, ("export", *ALLOWED["export"]))]
    assert crossing == ["cifar10_pipeline.training.loop.train"]
