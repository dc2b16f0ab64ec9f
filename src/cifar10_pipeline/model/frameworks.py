"""The frameworks that train and export the network: the one registry that the trainer, the exporter, the tuner,
the benchmarks and the tests read, so that a framework's modules, files and environment are written down once.

Modules are named, not imported (``module:attribute`` for one object), so reading the registry imports no
framework: PyTorch and TensorFlow live in separate environments and never share a process.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any


class FrameworkError(RuntimeError):
    """A framework that is unknown, or not installed in this environment."""


@dataclass(frozen=True)
class Framework:
    name: str  # as run.json and the ONNX metadata record it
    title: str  # for people: --help, messages
    package: str  # the distribution's import name: whether it is installed here
    network: str  # module: build_model, load_model_file, pooling_last
    trainer: str  # the training loop's adapter class (training.loop.Trainer), module:attribute
    converter: str  # module: the exporter's adapter, convert(model) -> (runner, ONNX model, version)
    model_file: str  # the final model in a run directory
    checkpoint_file: str  # the latest epoch's checkpoint in a run directory (--resume)
    venv: str  # the environment `make` keeps it in, relative to the repository
    venv_variable: str  # the make (and environment) variable that moves that environment
    extra: str  # the pyproject extra that installs it
    make_install: str  # the make target that makes its environment
    # set before the framework is first imported, unless already set
    environment: dict[str, str] = field(default_factory=dict)

    def installed(self) -> bool:
        return importlib.util.find_spec(self.package) is not None

    def python(self) -> str:
        """The interpreter that runs this framework: this one if it is installed here, else its environment's."""
        if self.installed():
            return sys.executable
        return str(Path(os.environ.get(self.venv_variable) or self.venv) / "bin" / "python")

    def load(self, role: str) -> Any:
        """The ``network``, ``trainer`` or ``converter`` of this framework, imported now; a FrameworkError naming the
        environment to use when the framework is not installed here."""
        if not self.installed():
            raise FrameworkError(f"{self.title} ({self.package}) is not installed in this environment "
                                 f"({sys.prefix}); use {self.venv} (make {self.make_install}, "
                                 f"or pip install '.[{self.extra}]')")
        for key, value in self.environment.items():
            os.environ.setdefault(key, value)
        module_name, _, attribute = getattr(self, role).partition(":")
        module: ModuleType = importlib.import_module(module_name)
        return getattr(module, attribute) if attribute else module


FRAMEWORKS: dict[str, Framework] = {f.name: f for f in (
    Framework(
        name="torch", title="PyTorch", package="torch",
        network="cifar10_pipeline.model.torch_net",
        trainer="cifar10_pipeline.training.torch_trainer:TorchTrainer",
        converter="cifar10_pipeline.export.torch_converter",
        model_file="model.pt", checkpoint_file="checkpoint.pt",
        venv=".venv", venv_variable="VENV", extra="torch", make_install="install",
    ),
    Framework(
        name="tensorflow", title="TensorFlow/Keras", package="tensorflow",
        network="cifar10_pipeline.model.keras_net",
        trainer="cifar10_pipeline.training.keras_trainer:KerasTrainer",
        converter="cifar10_pipeline.export.keras_converter",
        model_file="model.keras", checkpoint_file="checkpoint.npz",
        venv=".venv-tf", venv_variable="TF_VENV", extra="tf", make_install="install-tf",
        # TensorFlow's C++ INFO and WARNING lines (device creation, XLA compilation) would drown the progress bars;
        # errors still show. TensorFlow reads it when first imported.
        environment={"TF_CPP_MIN_LOG_LEVEL": "2"},
    ),
)}
NAMES = tuple(FRAMEWORKS)


def get(name: str) -> Framework:
    try:
        return FRAMEWORKS[name]
    except KeyError:
        raise FrameworkError(f"unknown framework {name!r}; expected one of {list(FRAMEWORKS)}") from None


def installed() -> list[Framework]:
    """The frameworks installed in this environment, in registry order."""
    return [f for f in FRAMEWORKS.values() if f.installed()]


def default() -> str:
    """The first framework of the registry installed in this environment (each lives in its own)."""
    return next((f.name for f in installed()), NAMES[0])
