"""The training benchmark's smoke mode: it runs the real trainer and exporter end to end and writes its figures."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from harness import REPO
from harness.report import BENCHMARKS_MD


@pytest.mark.slow
def test_training_benchmark_smoke_trains_exports_and_writes_json_and_markdown(tmp_path):
    result = subprocess.run([sys.executable, "-m", "benchmarks.train", "--only", "torch-5min", "--seeds", "0,1",
                             "--smoke", "--out", str(tmp_path)], capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / "train-torch-5min.json").read_text())
    assert report["smoke"] and report["config"] == "benchmarks/configs/fashion-mnist-torch-5min.json"
    assert [r["seed"] for r in report["runs"]] == [0, 1]
    for run in report["runs"]:
        assert run["epochs"] == 1 and 0 <= run["onnx_accuracy"] <= 1 and run["wall_seconds"] > run["train_seconds"] > 0
        assert (run["width"], run["batch_size"]) == (32, 128)
        # the mean step: 2,000 images in batches of 128 are 16 steps (train_seconds is rounded to 0.1 s: 6.25 ms)
        assert run["ms_per_step"] == pytest.approx(1000 * run["train_seconds"] / 16, abs=3.2)
        assert (tmp_path / "runs" / f"torch-5min-seed{run['seed']}" / "model.onnx").is_file()
        assert run["onnx_batch1_p50_ms"] > 0 and run["onnx_batch256_images_per_s"] > 0
    assert report["mean_accuracy"] == pytest.approx(sum(r["onnx_accuracy"] for r in report["runs"]) / 2)
    assert report["met"] is False  # one tiny epoch on 2,000 images is far from 94%
    markdown = (tmp_path / "train-torch-5min.md").read_text()
    assert "| 1 | 1 | 32 | 128 |" in markdown and "not met" in markdown and "smoke" in markdown
    assert "in 12 epochs" in markdown and "ms per step" in markdown
    assert f"{report['mean_onnx_batch256_images_per_s']} images/s in batches of 256" in markdown
    assert report["mean_live_accuracy"] is None and "live weights" not in markdown  # no ema: one model per run


def test_every_goal_s_config_trains_within_its_budget_of_epochs():
    # a goal is a budget of work: the config it measures may not train longer than the goal allows
    listed = subprocess.run([sys.executable, "-m", "benchmarks.train", "--list"], capture_output=True, text=True,
                            check=True)
    goals = [json.loads(line) for line in listed.stdout.splitlines()]
    for goal in goals:
        config = json.loads((REPO / goal["config"]).read_text())
        assert config["epochs"] <= goal["epochs"], goal["name"]
        assert goal["target"] == f">= {100 * goal['accuracy']:.1f}% in {goal['epochs']} epochs"
    # the goals: PyTorch 95.0% in 16 epochs, TensorFlow 94.0% in 10, the stretch 94.0% in 8
    assert {(g["framework"], g["accuracy"], g["epochs"]) for g in goals} >= {
        ("torch", 0.95, 16), ("tensorflow", 0.94, 10), ("torch", 0.94, 8)}


@pytest.mark.slow
def test_training_benchmark_smoke_times_the_cifar10_gpu_config_in_both_frameworks(tmp_path):
    result = subprocess.run([sys.executable, "-m", "benchmarks.train", "--only", "throughput", "--smoke",
                             "--out", str(tmp_path)], capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / "train-throughput.json").read_text())
    assert report["config"] == "benchmarks/configs/cifar10-gpu.json"
    assert [r["framework"] for r in report["rows"]] == ["torch", "tensorflow"]
    for row in report["rows"]:
        assert row["images_per_second"] > 0
        assert row["seconds_per_cifar10_epoch"] == pytest.approx(50_000 / row["images_per_second"], rel=0.01)


def test_training_benchmark_refuses_an_unknown_case_and_bad_seeds(tmp_path):
    unknown = subprocess.run([sys.executable, "-m", "benchmarks.train", "--only", "jax-1min", "--out", str(tmp_path)],
                             capture_output=True, text=True)
    assert unknown.returncode == 2 and "invalid choice: 'jax-1min'" in unknown.stderr
    seeds = subprocess.run([sys.executable, "-m", "benchmarks.train", "--seeds", "0,x", "--out", str(tmp_path)],
                           capture_output=True, text=True)
    assert seeds.returncode == 2 and "expected comma-separated integers" in seeds.stderr


@pytest.mark.slow
def test_a_candidate_trains_the_goal_s_config_with_its_keys_changed(tmp_path):
    result = subprocess.run([sys.executable, "-m", "benchmarks.train", "--only", "torch-5min", "--seeds", "0",
                             "--smoke", "--set", "width=8", "--set", "dropout=0", "--set", "ema=0.9", "--out",
                             str(tmp_path)],
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / "train-torch-5min.json").read_text())
    shipped = json.loads((REPO / "benchmarks" / "configs" / "fashion-mnist-torch-5min.json").read_text())
    params = tmp_path / "train-torch-5min.params.json"
    assert report["overrides"] == {"width": 8, "dropout": 0, "ema": 0.9} and report["params"] == str(params)
    assert json.loads(params.read_text()) == {**shipped, "width": 8, "dropout": 0, "ema": 0.9}
    run = tmp_path / "runs" / "torch-5min-seed0"
    trained = json.loads((run / "config.json").read_text())
    assert (trained["width"], trained["dropout"]) == (8, 0.0) and report["runs"][0]["width"] == 8
    markdown = (tmp_path / "train-torch-5min.md").read_text()
    assert "with width=8, dropout=0, ema=0.9 (`" in markdown
    # with ema the exported file is the average, and the live weights' score, from the last metrics row, is beside it
    live = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])["eval_acc_live"]
    assert report["runs"][0]["live_accuracy"] == report["mean_live_accuracy"] == live
    assert f"live weights, scored by the trainer, {100 * live:.2f}%: mean **{100 * live:.2f}%**" in markdown


@pytest.mark.slow
def test_a_candidate_s_figures_stay_out_of_benchmarks_md(tmp_path):
    # a full (not smoke) run, kept tiny by the candidate's own keys: a full run of a shipped config is recorded
    before = BENCHMARKS_MD.read_text()
    try:
        result = subprocess.run([sys.executable, "-m", "benchmarks.train", "--only", "torch-5min", "--seeds", "0",
                                 "--set", "epochs=1", "--set", "max_train_samples=1000", "--set", "width=8",
                                 "--set", "tta=false", "--out", str(tmp_path)], capture_output=True, text=True,
                                timeout=900)
        assert result.returncode == 0, result.stderr[-3000:]
        assert BENCHMARKS_MD.read_text() == before and "recorded in" not in result.stdout
    finally:
        BENCHMARKS_MD.write_text(before)
    report = json.loads((tmp_path / "train-torch-5min.json").read_text())
    assert not report["smoke"] and report["runs"][0]["epochs"] == 1 and report["met"] is False


def test_a_candidate_s_bad_key_or_value_is_refused_before_any_training(tmp_path):
    for setting, message in (("droput=0", "unknown config keys ['droput']"), ("dropout=2", "dropout=2.0 must be"),
                             ("dropout", "expected KEY=VALUE")):
        done = subprocess.run([sys.executable, "-m", "benchmarks.train", "--only", "torch-5min", "--set", setting,
                               "--out", str(tmp_path)], capture_output=True, text=True)
        assert done.returncode == 2 and message in done.stderr, done.stderr
        assert not (tmp_path / "runs").exists()
