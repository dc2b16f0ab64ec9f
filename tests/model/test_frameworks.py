"""The registry of frameworks (``model.frameworks``): which are installed here, the default, the interpreter of a
framework installed elsewhere, and importing one: its environment variables first, or an error naming where it is.

"Installed" is what ``importlib.util.find_spec`` says of the framework's package; the tests replace it, so they say
the same in either environment.
"""

from __future__ import annotations

import dataclasses
import importlib.machinery
import importlib.util
import sys
import textwrap

import pytest

from cifar10_pipeline.model import frameworks
from cifar10_pipeline.model.frameworks import FRAMEWORKS, NAMES, FrameworkError

REAL_FIND_SPEC = importlib.util.find_spec


@pytest.fixture
def installed_here(monkeypatch):
    """``installed_here(*packages)``: only these frameworks' packages are importable from now on."""

    def only(*packages: str) -> None:
        framework_packages = {f.package for f in FRAMEWORKS.values()}

        def find_spec(name, *args, **kwargs):
            if name in framework_packages:
                return importlib.machinery.ModuleSpec(name, None) if name in packages else None
            return REAL_FIND_SPEC(name, *args, **kwargs)

        monkeypatch.setattr(importlib.util, "find_spec", find_spec)

    return only


def test_the_registry_knows_both_frameworks_and_their_files():
    assert NAMES == ("torch", "tensorflow")
    assert [(f.model_file, f.checkpoint_file) for f in FRAMEWORKS.values()] == \
           [("model.pt", "checkpoint.pt"), ("model.keras", "checkpoint.npz")]


def test_the_framework_under_test_is_installed_here(framework):
    assert framework in frameworks.installed() and framework.python() == sys.executable


def test_installed_lists_what_imports_here_in_registry_order(installed_here):
    installed_here("tensorflow")
    assert [f.name for f in frameworks.installed()] == ["tensorflow"]
    installed_here("tensorflow", "torch")
    assert [f.name for f in frameworks.installed()] == ["torch", "tensorflow"]


def test_default_is_the_first_installed_framework_or_the_first_of_all(installed_here):
    installed_here("tensorflow")
    assert frameworks.default() == "tensorflow"
    installed_here("torch", "tensorflow")
    assert frameworks.default() == "torch"
    installed_here()
    assert frameworks.installed() == [] and frameworks.default() == "torch"


def test_get_of_an_unknown_name_lists_the_known_ones():
    with pytest.raises(FrameworkError, match=r"unknown framework 'jax'; expected one of \['torch', 'tensorflow'\]"):
        frameworks.get("jax")


@pytest.mark.parametrize("name, variable, venv", [("torch", "VENV", ".venv"), ("tensorflow", "TF_VENV", ".venv-tf")])
def test_python_of_a_framework_installed_elsewhere_is_its_environments(installed_here, monkeypatch, tmp_path, name,
                                                                       variable, venv):
    installed_here()
    framework = frameworks.get(name)
    monkeypatch.delenv(variable, raising=False)
    assert framework.python() == f"{venv}/bin/python"
    monkeypatch.setenv(variable, str(tmp_path / "elsewhere"))  # `make VENV=...` / `make TF_VENV=...`
    assert framework.python() == str(tmp_path / "elsewhere" / "bin" / "python")


def test_python_of_a_framework_installed_here_is_this_interpreter(installed_here, monkeypatch):
    installed_here("tensorflow")
    monkeypatch.setenv("TF_VENV", "/elsewhere")
    assert frameworks.get("tensorflow").python() == sys.executable


@pytest.mark.parametrize("name, fix", [("torch", "use .venv (make install, or pip install '.[torch]')"),
                                       ("tensorflow", "use .venv-tf (make install-tf, or pip install '.[tf]')")])
def test_loading_a_framework_not_installed_names_its_environment_and_make_target(installed_here, name, fix):
    installed_here()
    with pytest.raises(FrameworkError) as error:
        frameworks.get(name).load("trainer")
    assert "is not installed in this environment" in str(error.value) and str(error.value).endswith(fix)


@pytest.fixture
def recording_module(tmp_path, monkeypatch):
    """An importable module ``env_probe`` that records, as it is imported, what ``PROBE_LEVEL`` was."""
    (tmp_path / "env_probe.py").write_text(textwrap.dedent("""
        import os

        SEEN = os.environ.get("PROBE_LEVEL")

        class Trainer:
            pass
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "env_probe", raising=False)
    monkeypatch.delenv("PROBE_LEVEL", raising=False)
    return dataclasses.replace(FRAMEWORKS["torch"], name="probe", package="json", network="env_probe",
                               trainer="env_probe:Trainer", environment={"PROBE_LEVEL": "2"})


def test_load_sets_the_frameworks_environment_before_importing_it(recording_module):
    module = recording_module.load("network")
    assert module.SEEN == "2"
    assert recording_module.load("trainer") is module.Trainer  # module:attribute


def test_load_leaves_a_variable_the_user_set(recording_module, monkeypatch):
    monkeypatch.setenv("PROBE_LEVEL", "0")
    assert recording_module.load("network").SEEN == "0"


def test_tensorflow_is_imported_with_its_cpp_log_level_set():
    # the variable TensorFlow reads once, when first imported: C++ INFO and WARNING lines would drown the progress
    assert frameworks.get("tensorflow").environment == {"TF_CPP_MIN_LOG_LEVEL": "2"}
