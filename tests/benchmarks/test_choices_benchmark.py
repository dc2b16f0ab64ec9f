"""The speed-choices benchmark runs end to end (both frameworks' halves) in smoke mode and leaves BENCHMARKS.md
alone."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from harness.report import BENCHMARKS_MD
from tests.support.paths import REPO


@pytest.mark.slow
def test_choices_benchmark_smoke_times_every_choice_both_ways(tmp_path):
    before = BENCHMARKS_MD.read_text()
    result = subprocess.run([sys.executable, "-m", "benchmarks.choices", "--smoke", "--out", str(tmp_path)],
                            cwd=REPO, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = json.loads((tmp_path / "choices.json").read_text())["rows"]
    settings = {(row["choice"], row["setting"]) for row in rows}
    assert ("PyTorch training step", "precision bfloat16, channels_last") in settings
    assert ("TensorFlow training step", "precision float32, XLA") in settings
    assert ("onnxruntime batch-1 call", "2 intra-op thread(s)") in settings
    assert len(rows) == 10 and all(row["ms"] > 0 for row in rows)  # 5 PyTorch, 3 TensorFlow, 2 onnxruntime
    assert "| PyTorch evaluation | 256 images per call |" in (tmp_path / "choices.md").read_text()
    assert BENCHMARKS_MD.read_text() == before
