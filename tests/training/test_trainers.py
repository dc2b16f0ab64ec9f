"""Both trainers (``--framework``): they learn, record their run the same way, resume, and fail clearly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import onnx
import pytest

from cifar10_pipeline.export.__main__ import main as export_main
from cifar10_pipeline.export.gates import OrtRunner, check_parity
from cifar10_pipeline.export.pipeline import convert_run
from tests.support.images import write_photos
from tests.support.paths import REPO
from tests.support.runs import tiny_config
from cifar10_pipeline.training.config import TrainConfig, one_cycle_lr
from cifar10_pipeline.training.cli import main as cli_main
from cifar10_pipeline.training.loop import train
from cifar10_pipeline.training.run import Run

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
BENCHMARK_CONFIGS = REPO / "benchmarks" / "configs"
# the metrics row both trainers write (training.run.epoch_row)
ROW_KEYS = {"epoch", "lr", "train_loss", "train_acc", "eval_loss", "eval_acc", "eval_split", "train_seconds",
            "seconds", "images_per_second"}


def test_short_synthetic_run_learns_and_records_everything(trained, framework):
    assert trained.eval_accuracy > 0.5, f"accuracy {trained.eval_accuracy:.3f} is not well above chance (0.1)"
    run = trained.run
    rows = run.metrics()
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    assert all(set(r) == ROW_KEYS for r in rows), rows[0]
    assert rows[-1]["train_loss"] < rows[0]["train_loss"]
    config = run.config
    assert config == tiny_config(run.path.parent.parent)
    # the row's lr is the last step's: one_cycle_lr at the end of each epoch
    assert [r["lr"] for r in rows] == pytest.approx([one_cycle_lr(config, e / 3) for e in (1, 2, 3)])
    for name in ("curves.png", "confusion.png"):
        assert (run.path / name).read_bytes()[:8] == PNG_MAGIC
    info = run.info
    assert info["status"] == "finished" and info["framework"] == framework.name
    assert len(info["classes"]) == 10 and info["framework_version"] and info["precision"] in ("float32", "bfloat16")
    assert np.trace(np.array(info["confusion"])) / 1000 == pytest.approx(trained.eval_accuracy)
    assert Run.open(None, run.path.parent).path == run.path  # LAST.json points at it
    assert (run.path / framework.checkpoint_file).is_file() and (run.path / framework.model_file).is_file()


def test_bfloat16_training_learns_and_saves_a_float32_model_that_exports(tmp_path, framework):
    # explicit bfloat16: the path "auto" takes on a GPU (both frameworks) and on CPUs with native bfloat16 (PyTorch)
    result = train(tiny_config(tmp_path, precision="bfloat16", tta=False), framework.name)
    assert result.run.info["precision"] == "bfloat16"
    assert result.eval_accuracy > 0.5, f"accuracy {result.eval_accuracy:.3f} is not well above chance (0.1)"
    runner, model, _ = convert_run(result.run, framework)
    images = np.random.default_rng(0).integers(0, 256, (256, 32, 32, 3), dtype=np.uint8)
    report = check_parity(runner, OrtRunner(model.SerializeToString()), images, np.zeros(256), log=lambda _: None)
    assert report["passed"] and report["max_abs_diff"] <= 1e-4, report["max_abs_diff"]


class Interrupt(Exception):
    pass


def test_resume_after_interrupt_matches_an_uninterrupted_run(tmp_path, framework):
    full = train(tiny_config(tmp_path, epochs=2, run_name="full", max_train_samples=1000), framework.name)

    def stop_after_first(epoch, row):
        if epoch == 1:
            raise Interrupt

    config = tiny_config(tmp_path, epochs=2, run_name="cut", max_train_samples=1000)
    with pytest.raises(Interrupt):
        train(config, framework.name, on_epoch=stop_after_first)
    cut = Run.open(tmp_path / "runs" / "cut")
    assert len(cut.metrics()) == 1 and not (cut.path / framework.model_file).exists()
    resumed = train(config, framework.name, resume=cut)
    drop = ("seconds", "train_seconds", "images_per_second")
    strip = lambda rows: [{k: v for k, v in r.items() if k not in drop} for r in rows]  # noqa: E731
    assert strip(resumed.metrics) == strip(full.metrics)
    assert resumed.eval_accuracy == full.eval_accuracy


def test_killed_cli_run_resumes_and_loses_at_most_one_epoch(tmp_path, framework):
    runs = tmp_path / "runs"
    command = [sys.executable, "-m", "cifar10_pipeline.training", "--framework", framework.name]
    args = ["--dataset", "synthetic", "--epochs", "3", "--width", "8", "--max-train-samples", "1500",
            "--max-test-samples", "300", "--runs-dir", str(runs), "--run-name", "killed"]
    proc = subprocess.Popen([*command, *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    metrics = runs / "killed" / "metrics.jsonl"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        if metrics.exists() and metrics.read_text().count("\n") >= 1 and (runs / "killed" / framework.checkpoint_file).exists():
            break
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = metrics.read_text().count("\n")
    assert 1 <= done < 3, f"the run was not killed mid-way ({done} epochs done)"
    result = subprocess.run([*command, "--resume", str(runs / "killed")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert f"after epoch {done}/3" in result.stderr or f"after epoch {done - 1}/3" in result.stderr
    assert [r["epoch"] for r in Run.open(runs / "killed").metrics()] == [1, 2, 3]


def test_a_folder_of_photos_of_mixed_sizes_trains_and_exports(tmp_path, framework, capsys, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # the decoded arrays' cache
    photos = tmp_path / "photos"
    write_photos(photos, {"train": 16, "test": 6}, classes=("ant", "bee", "cow"))  # 40x40 .. 300x300, every mode
    args = ["--dataset", "folder", "--data-dir", str(photos), "--image-size", "16", "--epochs", "1", "--width", "8",
            "--batch-size", "16", "--runs-dir", str(tmp_path / "runs")]
    code, _, err = _main(framework, args, capsys)
    assert code == 0, err
    assert "66 images of" in err and "decoded to 16x16x3" in err  # (16 + 6) x 3 classes
    run = Run.open(None, tmp_path / "runs")
    assert run.info["classes"] == ["ant", "bee", "cow"] and run.config.image_size == 16
    out = tmp_path / "model.onnx"
    assert export_main(["--run", str(run.path), "--out", str(out)]) == 0
    assert "from the cache" in capsys.readouterr().err  # the export reads the training run's decoded arrays
    model = onnx.load(out)
    assert [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim[1:]] == [16, 16, 3]
    assert {p.key: p.value for p in model.metadata_props}["dataset"] == "folder"


def test_device_cuda_without_a_gpu_exits_2_saying_so(tmp_path, framework):
    # CUDA_VISIBLE_DEVICES="" hides every GPU from both frameworks: this machine has none, whatever it has
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    args = ["--dataset", "synthetic", "--max-train-samples", "256", "--device", "cuda", "--runs-dir", str(tmp_path)]
    result = subprocess.run([sys.executable, "-m", "cifar10_pipeline.training", "--framework", framework.name, *args], capture_output=True, text=True, env=env,
                            check=False)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: device='cuda' but ") and "use device=auto or cpu" in last, last
    assert not any(tmp_path.iterdir())  # refused before a run directory was made


def _main(framework, argv, capsys):
    """The CLI in-process (a framework starts once per session, not once per case): (exit code, stdout, stderr)."""
    try:
        code = cli_main(["--framework", framework.name, *argv])
    except SystemExit as e:  # argparse: --help and usage errors
        code = e.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_dry_run_smoke(tmp_path, framework, capsys):
    code, out, err = _main(framework, ["--dataset", "synthetic", "--dry-run", "--width", "8", "--runs-dir", str(tmp_path)],
                           capsys)
    assert code == 0, err
    assert "accuracy" in out
    run = Run.open(None, tmp_path)
    assert len(run.metrics()) == 1 and run.config.max_train_samples == 512 and run.info["framework"] == framework.name


def test_help_lists_every_config_flag(framework, capsys):
    code, out, _ = _main(framework, ["--help"], capsys)
    assert code == 0
    for flag in ("--batch-size", "--lr", "--label-smoothing", "--crop-padding", "--params", "--resume", "--dry-run"):
        assert flag in out


@pytest.mark.parametrize("args, message", [
    (["--epochs", "abc"], "invalid int value: 'abc'"),
    (["--dataset", "imagenet"], "invalid choice: 'imagenet'"),
    (["--flip", "maybe"], "expected true or false"),
    (["--lr", "-1"], "lr=-1.0 must be > 0"),
    (["--image-size", "4"], "image_size=4 must be 0 (the data set's native size) or >= 8"),
    (["--params", "/nonexistent/params.json"], "does not exist"),
    (["--dataset", "folder", "--data-dir", "{tmp}/empty"], "is not a folder"),
    (["--dataset", "cifar10", "--data-dir", "{tmp}/empty"], "put it at"),
    (["--resume", "{tmp}/no-such-run"], "is not a run directory"),
    (["--resume", "{tmp}/x", "--epochs", "3"], "--resume continues a run with its saved config"),
    (["--resume", "{other_run}"], "was trained with 'other', not"),
])
def test_bad_arguments_exit_2_with_a_clear_message(tmp_path, framework, capsys, monkeypatch, args, message):
    # no network in tests: a CIFAR-10 download attempt must fail at once, so point it at a closed local port
    monkeypatch.setenv("CIFAR10_URL", "http://127.0.0.1:9/cifar-10-python.tar.gz")
    other = Run.create(tiny_config(tmp_path, run_name="other-run"), "other").path if "{other_run}" in args else ""
    code, _, err = _main(framework, [a.format(tmp=tmp_path, other_run=other) for a in args]
                         + ["--runs-dir", str(tmp_path / "runs")], capsys)
    assert code == 2, err
    assert message in err


@pytest.mark.parametrize("name", sorted(p.name for p in BENCHMARK_CONFIGS.glob("*.json")))
def test_every_shipped_config_trains_a_step_on_the_cpu(tmp_path, framework, name):
    # the benchmark configs, the CIFAR-10 GPU one included, are what users pass as PARAMS: each must load and
    # train (one step at its own batch size and width, on CIFAR-shaped synthetic data)
    config = TrainConfig.from_json(BENCHMARK_CONFIGS / name)
    config = TrainConfig.from_dict({"dataset": "synthetic", "epochs": 1, "max_train_samples": config.batch_size,
                                    "max_test_samples": 64, "device": "cpu", "runs_dir": str(tmp_path)}, config)
    result = train(config, framework.name)
    (row,) = result.run.metrics()
    assert np.isfinite(row["train_loss"]) and result.run.info["status"] == "finished"
