"""The Python environments some targets run in, apart from the project's: each holds a package that clashes with
the project's pins (onnxruntime-openvino replaces onnxruntime; tritonclient pins its own protobuf and numpy).

The Makefile makes them (``make install-openvino``, ``make install-tritonclient``) and exports their variables;
``cifar10-targets`` runs their interpreters as subprocesses and never imports what they hold.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


class EnvironmentMissing(RuntimeError):
    """An environment a target needs is not there; the message names the make target that makes it."""


@dataclass(frozen=True)
class Environment:
    title: str  # what it holds, for messages
    venv: str  # where make keeps it, relative to the repository
    variable: str  # the make (and environment) variable that moves it
    make_install: str  # the make target that makes it

    def python(self) -> Path:
        """Its interpreter: ``$VARIABLE/bin/python``, else ``VENV/bin/python`` (relative to the working folder)."""
        return Path(os.environ.get(self.variable) or self.venv) / "bin" / "python"

    def require(self) -> Path:
        """Its interpreter, or EnvironmentMissing saying how to make it."""
        python = self.python()
        if not python.is_file():
            raise EnvironmentMissing(f"{python} not found: the {self.title} environment is made by "
                                     f"`make {self.make_install}` (or set {self.variable})")
        return python


OPENVINO = Environment("onnxruntime-openvino", ".venv-openvino", "OPENVINO_VENV", "install-openvino")
TRITONCLIENT = Environment("tritonclient[http,grpc]", "build/venv-tritonclient", "TRITONCLIENT_VENV",
                           "install-tritonclient")
