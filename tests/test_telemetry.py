"""onnxruntime sends nothing to Microsoft from this project's processes: the package sets ORT_DISABLE_TELEMETRY=1
before any session, so onnxruntime keeps no device id or event cache (which it writes under ~/.cache/Microsoft
before it sends anything); a user's own setting is left alone."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.support.onnx_models import write_model
from tests.support.paths import REPO


def python(code: str, home, **env: str) -> str:
    """Run ``code`` in a fresh interpreter whose environment holds only PATH, HOME and ``env`` (no CI variables,
    which onnxruntime also reads); its stdout."""
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120,
                          env={"PATH": os.environ["PATH"], "HOME": str(home), **env})
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_a_session_opened_after_importing_the_package_keeps_no_device_id(tmp_path):
    model = write_model(tmp_path / "model.onnx", seed=0)
    home = tmp_path / "home"
    home.mkdir()
    code = ("import os, cifar10_pipeline, onnxruntime as ort; "
            f"ort.InferenceSession({str(model)!r}, providers=['CPUExecutionProvider']); "
            "print(os.environ.get('ORT_DISABLE_TELEMETRY'))")
    printed = python(code, home)
    assert sorted(p.relative_to(home).as_posix() for p in home.rglob("*")) == []
    assert printed == "1"


def test_a_users_own_setting_wins(tmp_path):
    code = "import os, cifar10_pipeline; print(os.environ['ORT_DISABLE_TELEMETRY'])"
    assert python(code, tmp_path, ORT_DISABLE_TELEMETRY="0") == "0"
