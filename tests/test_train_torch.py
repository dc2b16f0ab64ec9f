"""The PyTorch trainer: it learns, it records its run, it resumes, and its CLI fails clearly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from tests.conftest import tiny_config
from training.config import TrainConfig
from training.run import Run
from training.train_torch import augment, train

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_short_synthetic_run_learns_and_records_everything(torch_run):
    assert torch_run.eval_accuracy > 0.5, f"accuracy {torch_run.eval_accuracy:.3f} is not well above chance (0.1)"
    run = torch_run.run
    rows = run.metrics()
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    assert rows[-1]["train_loss"] < rows[0]["train_loss"]
    assert {"train_loss", "train_acc", "eval_loss", "eval_acc", "seconds", "images_per_second"} <= set(rows[0])
    for name in ("curves.png", "confusion.png"):
        assert (run.path / name).read_bytes()[:8] == PNG_MAGIC
    assert run.config == tiny_config(run.path.parent.parent)
    info = run.info
    assert info["status"] == "finished" and info["framework"] == "torch"
    assert np.trace(np.array(info["confusion"])) / 1000 == pytest.approx(torch_run.eval_accuracy)
    assert Run.open(None, run.path.parent).path == run.path  # LAST.json points at it


class Interrupt(Exception):
    pass


def test_resume_after_interrupt_matches_an_uninterrupted_run(tmp_path):
    full = train(tiny_config(tmp_path, epochs=2, run_name="full", max_train_samples=1000))

    def stop_after_first(epoch, row):
        if epoch == 1:
            raise Interrupt

    config = tiny_config(tmp_path, epochs=2, run_name="cut", max_train_samples=1000)
    with pytest.raises(Interrupt):
        train(config, on_epoch=stop_after_first)
    cut = Run.open(tmp_path / "runs" / "cut")
    assert len(cut.metrics()) == 1 and not (cut.path / "model.pt").exists()
    resumed = train(config, resume=cut)
    drop = ("seconds", "train_seconds", "images_per_second")
    strip = lambda rows: [{k: v for k, v in r.items() if k not in drop} for r in rows]  # noqa: E731
    assert strip(resumed.metrics) == strip(full.metrics)
    assert resumed.eval_accuracy == full.eval_accuracy


def _cli(*args, **kwargs):
    return subprocess.run([sys.executable, "-m", "training.train_torch", *args], capture_output=True, text=True, **kwargs)


def test_killed_cli_run_resumes_and_loses_at_most_one_epoch(tmp_path):
    runs = tmp_path / "runs"
    args = ["--dataset", "synthetic", "--epochs", "3", "--width", "8", "--max-train-samples", "1500",
            "--max-test-samples", "300", "--runs-dir", str(runs), "--run-name", "killed"]
    proc = subprocess.Popen([sys.executable, "-m", "training.train_torch", *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    metrics = runs / "killed" / "metrics.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if metrics.exists() and metrics.read_text().count("\n") >= 1 and (runs / "killed" / "checkpoint.pt").exists():
            break
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = metrics.read_text().count("\n")
    assert 1 <= done < 3, f"the run was not killed mid-way ({done} epochs done)"
    result = _cli("--resume", str(runs / "killed"))
    assert result.returncode == 0, result.stderr
    assert f"after epoch {done}/3" in result.stderr or f"after epoch {done - 1}/3" in result.stderr
    assert [r["epoch"] for r in Run.open(runs / "killed").metrics()] == [1, 2, 3]


def test_dry_run_smoke(tmp_path):
    result = _cli("--dataset", "synthetic", "--dry-run", "--width", "8", "--runs-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "accuracy" in result.stdout
    rows = Run.open(None, tmp_path).metrics()
    assert len(rows) == 1


def test_help_lists_every_config_flag():
    result = _cli("--help")
    assert result.returncode == 0
    for flag in ("--batch-size", "--lr", "--label-smoothing", "--crop-padding", "--params", "--resume", "--dry-run"):
        assert flag in result.stdout


@pytest.mark.parametrize("args, message", [
    (["--epochs", "abc"], "invalid int value: 'abc'"),
    (["--dataset", "imagenet"], "invalid choice: 'imagenet'"),
    (["--flip", "maybe"], "expected true or false"),
    (["--lr", "-1"], "lr=-1.0 must be > 0"),
    (["--params", "/nonexistent/params.json"], "does not exist"),
    (["--dataset", "cifar10", "--data-dir", "{tmp}/empty"], "cifar-10-python.tar.gz"),
    (["--resume", "{tmp}/no-such-run"], "is not a run directory"),
    (["--resume", "{tmp}/x", "--epochs", "3"], "--resume continues a run with its saved config"),
])
def test_bad_arguments_exit_non_zero_without_traceback(tmp_path, args, message):
    # no network in tests: a cifar10 download attempt must fail fast, so point it at a closed local port
    env = {**os.environ, "CIFAR10_URL": "http://127.0.0.1:9/cifar-10-python.tar.gz"}
    result = _cli(*[a.format(tmp=tmp_path) for a in args], "--runs-dir", str(tmp_path / "runs"), env=env, timeout=120)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def _batch(seed=0, b=16, c=3, h=32, w=32):
    return torch.from_numpy(np.random.default_rng(seed).normal(size=(b, c, h, w)).astype(np.float32))


def test_augment_off_is_identity_and_crop_is_an_exact_shift():
    x = _batch()
    gen = torch.Generator().manual_seed(0)
    off = TrainConfig(crop_padding=0, flip=False, rotation=0.0)
    assert torch.equal(augment(x, off, gen), x)
    shifted = augment(x, TrainConfig(crop_padding=2, flip=False, rotation=0.0), gen)
    # every output pixel is an input pixel of the same image (no interpolation), within 2 pixels
    inner = shifted[:, :, 2:-2, 2:-2]
    for i in range(len(x)):
        matches = [torch.allclose(inner[i], x[i, :, 2 + dy:30 + dy, 2 + dx:30 + dx], atol=1e-5)
                   for dy in range(-2, 3) for dx in range(-2, 3)]
        assert sum(matches) == 1


def test_augment_flip_mirrors_about_half_the_images_and_rotation_changes_them():
    x = _batch(b=200)
    flipped = augment(x, TrainConfig(crop_padding=0, flip=True, rotation=0.0), torch.Generator().manual_seed(1))
    same = [torch.allclose(flipped[i], x[i], atol=1e-5) for i in range(len(x))]
    mirrored = [torch.allclose(flipped[i], x[i].flip(-1), atol=1e-5) for i in range(len(x))]
    assert all(s or m for s, m in zip(same, mirrored))
    assert 60 < sum(mirrored) < 140
    rotated = augment(x, TrainConfig(crop_padding=0, flip=False, rotation=10.0), torch.Generator().manual_seed(2))
    assert rotated.shape == x.shape and not torch.allclose(rotated, x, atol=1e-3)
