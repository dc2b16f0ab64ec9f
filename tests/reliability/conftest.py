"""The serving scenarios' smoke run, shared by the tests of each scenario: one ``python -m reliability --smoke``
process runs fuzz, soak and swaps; each test reads what it wrote."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

import pytest

from harness.report import RELIABILITY_MD
from tests.support.paths import REPO

SERVING = ("fuzz", "soak", "swaps")


@dataclass(frozen=True)
class SmokeRun:
    status: int  # the command's exit status
    output: str  # its stdout and stderr
    figures: dict[str, dict[str, Any]]  # scenario -> stress-<name>.json
    texts: dict[str, str]  # scenario -> stress-<name>.md


@pytest.fixture(scope="session")
def serving_smoke(tmp_path_factory) -> SmokeRun:
    """``python -m reliability --smoke --only fuzz soak swaps``, which must leave RELIABILITY.md alone."""
    out = tmp_path_factory.mktemp("reliability")
    before = RELIABILITY_MD.read_bytes() if RELIABILITY_MD.exists() else None
    done = subprocess.run([sys.executable, "-m", "reliability", "--smoke", "--only", *SERVING, "--out", str(out)],
                          check=False, cwd=REPO, capture_output=True, text=True, timeout=600)
    after = RELIABILITY_MD.read_bytes() if RELIABILITY_MD.exists() else None
    assert after == before, "a smoke run must leave RELIABILITY.md alone"
    figures = {name: json.loads((out / f"stress-{name}.json").read_text()) for name in SERVING
               if (out / f"stress-{name}.json").exists()}
    texts = {name: (out / f"stress-{name}.md").read_text() for name in figures}
    return SmokeRun(done.returncode, done.stdout + done.stderr, figures, texts)
