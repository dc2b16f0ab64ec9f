"""The TTA benchmark (``benchmarks.tta``): one trained model scored with each kind of view, its own among them; in
each framework's environment (PyTorch's and, listed in the Makefile's TF_TESTS, TensorFlow's)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from cifar10_pipeline.model import frameworks
from cifar10_pipeline.training.loop import train
from tests.support.runs import tiny_config


@pytest.mark.slow
def test_the_tta_benchmark_scores_one_model_three_ways_and_its_own_views_as_the_run_did(framework, tmp_path):
    # shifted along the axes: the shifts scored are the run's own kind
    result = train(tiny_config(tmp_path, tta_shift=1, tta_shift_axes=True, epochs=1), framework.name)
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, "-m", "benchmarks.tta", "--runs", str(result.run.path), "--out", str(out),
                           "--smoke"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((out / f"tta-{framework.name}.json").read_text())
    (row,) = report["runs"]
    assert report["framework"] == framework.name
    assert row["images"] == 1000 and row["shift"] == 1 and row["shift_axes"] is True
    assert row["own_views"] == {"mirror": True, "shift": 1, "shift_axes": True}
    # the run's own model is the mirror with the shifts: the loop's final evaluation scored the same views
    assert row["accuracy"]["mirror_shifts"] == pytest.approx(result.accuracy, abs=1e-9)
    assert len({round(v, 6) for v in row["accuracy"].values()}) > 1  # the views change the answers
    markdown = (out / f"tta-{framework.name}.md").read_text()
    assert f", {framework.title} (" in markdown and "| `tiny` | 0 | 1000 |" in markdown
    assert "(1 px along the axes)" in markdown
    assert "smoke" in markdown


def test_the_tta_benchmark_refuses_what_is_not_a_finished_run(framework, tmp_path):
    def refused(*runs) -> str:
        done = subprocess.run([sys.executable, "-m", "benchmarks.tta", "--runs", *map(str, runs), "--out",
                               str(tmp_path)], capture_output=True, text=True)
        assert done.returncode == 2
        return done.stderr

    assert "not a run directory" in refused(tmp_path)
    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text(json.dumps({"framework": framework.name}))
    assert f"no {framework.model_file}" in refused(run)
    # the other framework's run: that framework lives in an environment of its own (make install, make install-tf)
    other = frameworks.get(next(name for name in frameworks.NAMES if name != framework.name))
    other_run = tmp_path / "other"
    other_run.mkdir()
    (other_run / "run.json").write_text(json.dumps({"framework": other.name}))
    (other_run / other.model_file).touch()
    assert "several frameworks" in refused(run, other_run)
    assert f"is not installed here: run this with {other.python()}" in refused(other_run)
