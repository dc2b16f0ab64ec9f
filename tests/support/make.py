"""The commands ``make`` would run (``make -n``), for the tests of the Makefile's choices."""

from __future__ import annotations

import os
import subprocess

from tests.support.paths import REPO

# variables the tests set themselves: none may come from outside (the environment, or the MAKEFLAGS of a
# `make test GPU=1` running the tests; MAKELEVEL would make a nested make print "Entering directory" lines)
OUTSIDE = ("GPU", "WORKERS", "MAKEFLAGS", "MFLAGS", "MAKELEVEL")


def dry_run(target: str, *variables: str) -> list[str]:
    """The commands of ``make -n TARGET VARIABLES`` with PYTHON=python3 (the Makefile's default), whitespace runs
    squeezed to one space."""
    env = {name: value for name, value in os.environ.items() if name not in OUTSIDE}
    result = subprocess.run(["make", "-n", target, "PYTHON=python3", *variables], cwd=REPO, capture_output=True,
                            text=True, env=env, check=False)
    assert result.returncode == 0, result.stderr
    return [" ".join(line.split()) for line in result.stdout.splitlines()]
