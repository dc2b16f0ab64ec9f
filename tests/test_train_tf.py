"""The TensorFlow trainer: it learns, it records its run like the PyTorch one, it resumes, and its CLI fails clearly.

Runs under the TensorFlow environment: ``.venv-tf/bin/python -m pytest tests/test_train_tf.py``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import tiny_config
from training.config import TrainConfig, one_cycle_lr
from training.model_tf import BODY, PREPROCESS, build_model
from training.run import Run
from training.train_tf import (CHECKPOINT_FILE, MODEL_FILE, augment, load_trained, main, make_optimizer,
                               make_train_step, train)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# the metrics row schema both trainers write (training.train_torch writes exactly these keys)
ROW_KEYS = {"epoch", "lr", "train_loss", "train_acc", "eval_loss", "eval_acc", "eval_split", "train_seconds",
            "seconds", "images_per_second"}


def test_short_synthetic_run_learns_and_records_everything(tf_run):
    assert tf_run.eval_accuracy > 0.5, f"accuracy {tf_run.eval_accuracy:.3f} is not well above chance (0.1)"
    run = tf_run.run
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
    assert info["status"] == "finished" and info["framework"] == "tensorflow"
    assert info["framework_version"] == tf.__version__ and info["device"] == "/CPU:0"
    assert info["classes"] and len(info["classes"]) == 10
    assert np.trace(np.array(info["confusion"])) / 1000 == pytest.approx(tf_run.eval_accuracy)
    assert Run.open(None, run.path.parent).path == run.path  # LAST.json points at it
    assert (run.path / CHECKPOINT_FILE).is_file() and (run.path / MODEL_FILE).is_file()


def test_final_model_takes_raw_uint8_images_and_normalises_inside(tf_run):
    model = load_trained(tf_run.run)
    assert model.input.dtype == "uint8" and model.input.name == "image"
    assert tuple(model.input.shape) == (None, 32, 32, 3)
    images = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    preprocess = model.get_layer(PREPROCESS)
    mean, std = np.array(preprocess.mean), np.array(preprocess.std)
    normalised = (images.astype(np.float32) - mean) / std
    np.testing.assert_allclose(model(images, training=False), model.get_layer(BODY)(normalised, training=False),
                               atol=1e-4)
    # eval mode is deterministic (dropout off) and the logits are float32
    logits = model(images, training=False)
    assert logits.dtype == tf.float32 and logits.shape == (4, 10)
    np.testing.assert_array_equal(logits, model(images, training=False))


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
    assert len(cut.metrics()) == 1 and not (cut.path / MODEL_FILE).exists()
    resumed = train(config, resume=cut)
    drop = ("seconds", "train_seconds", "images_per_second")
    strip = lambda rows: [{k: v for k, v in r.items() if k not in drop} for r in rows]  # noqa: E731
    assert strip(resumed.metrics) == strip(full.metrics)
    assert resumed.eval_accuracy == full.eval_accuracy


def _cli(*args, **kwargs):
    return subprocess.run([sys.executable, "-m", "training.train_tf", *args], capture_output=True, text=True, **kwargs)


def test_killed_cli_run_resumes_and_loses_at_most_one_epoch(tmp_path):
    runs = tmp_path / "runs"
    args = ["--dataset", "synthetic", "--epochs", "3", "--width", "8", "--max-train-samples", "1500",
            "--max-test-samples", "300", "--runs-dir", str(runs), "--run-name", "killed"]
    proc = subprocess.Popen([sys.executable, "-m", "training.train_tf", *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    metrics = runs / "killed" / "metrics.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if metrics.exists() and metrics.read_text().count("\n") >= 1 and (runs / "killed" / CHECKPOINT_FILE).exists():
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
    run = Run.open(None, tmp_path)
    assert len(run.metrics()) == 1 and run.config.max_train_samples == 512 and run.info["framework"] == "tensorflow"


def _main(argv, capsys):
    """The CLI in-process (TensorFlow starts once per test session, not once per case): (exit code, stdout, stderr)."""
    try:
        code = main(argv)
    except SystemExit as e:  # argparse: --help and usage errors
        code = e.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_help_lists_every_config_flag(capsys):
    code, out, _ = _main(["--help"], capsys)
    assert code == 0
    for flag in ("--batch-size", "--lr", "--label-smoothing", "--crop-padding", "--params", "--resume", "--dry-run"):
        assert flag in out


def _torch_run_dir(tmp_path):
    """A run directory that the PyTorch trainer made (only its records: resuming it here must be refused)."""
    run = Run.create(tiny_config(tmp_path, run_name="torch-run"), "torch")
    return run.path


@pytest.mark.parametrize("args, message", [
    (["--epochs", "abc"], "invalid int value: 'abc'"),
    (["--dataset", "imagenet"], "invalid choice: 'imagenet'"),
    (["--flip", "maybe"], "expected true or false"),
    (["--lr", "-1"], "lr=-1.0 must be > 0"),
    (["--params", "/nonexistent/params.json"], "does not exist"),
    (["--dataset", "folder", "--data-dir", "{tmp}/empty"], "is not a folder"),
    (["--resume", "{tmp}/no-such-run"], "is not a run directory"),
    (["--resume", "{tmp}/x", "--epochs", "3"], "--resume continues a run with its saved config"),
    (["--resume", "{torch_run}"], "was trained with 'torch', not 'tensorflow'"),
])
def test_bad_arguments_exit_2_with_a_clear_message(tmp_path, capsys, args, message):
    fill = {"tmp": tmp_path, "torch_run": _torch_run_dir(tmp_path) if "{torch_run}" in args else ""}
    code, _, err = _main([a.format(**fill) for a in args] + ["--runs-dir", str(tmp_path / "runs")], capsys)
    assert code == 2, err
    assert message in err


def _batch(seed=0, b=16, h=32, w=32, c=3):
    return tf.constant(np.random.default_rng(seed).normal(size=(b, h, w, c)).astype(np.float32))


def _seed(a, b=0):
    return tf.constant([a, b], tf.int64)


def test_augment_off_is_identity_and_crop_is_an_exact_shift():
    x = _batch()
    off = TrainConfig(crop_padding=0, flip=False, rotation=0.0)
    assert augment(x, off, _seed(0)) is x
    shifted = augment(x, TrainConfig(crop_padding=2, flip=False, rotation=0.0), _seed(0)).numpy()
    x = x.numpy()
    # every output pixel is an input pixel of the same image (no interpolation), within 2 pixels
    inner = shifted[:, 2:-2, 2:-2]
    offsets = []
    for i in range(len(x)):
        matches = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)
                   if np.allclose(inner[i], x[i, 2 + dy:30 + dy, 2 + dx:30 + dx], atol=1e-5)]
        assert len(matches) == 1
        offsets += matches
    assert len(set(offsets)) > 5  # the shifts are random, not one fixed offset


def test_augment_reflects_at_the_border():
    x = _batch(b=64, h=8, w=8, c=1)
    shifted = augment(x, TrainConfig(crop_padding=2, flip=False, rotation=0.0), _seed(3)).numpy()
    x = x.numpy()
    # reflection that repeats the edge pixel (d c b a | a b c d), like torch's grid_sample "reflection"
    padded = np.pad(x, ((0, 0), (2, 2), (2, 2), (0, 0)), mode="symmetric")
    found = [any(np.allclose(shifted[i], padded[i, 2 + dy:10 + dy, 2 + dx:10 + dx], atol=1e-5)
                 for dy in range(-2, 3) for dx in range(-2, 3)) for i in range(len(x))]
    assert all(found)


def test_augment_flip_mirrors_about_half_the_images_and_rotation_changes_them():
    x = _batch(b=200)
    flipped = augment(x, TrainConfig(crop_padding=0, flip=True, rotation=0.0), _seed(1)).numpy()
    same = [np.allclose(flipped[i], x[i], atol=1e-5) for i in range(len(x))]
    mirrored = [np.allclose(flipped[i], x[i, :, ::-1], atol=1e-5) for i in range(len(x))]
    assert all(s or m for s, m in zip(same, mirrored))
    assert 60 < sum(mirrored) < 140
    config = TrainConfig(crop_padding=0, flip=False, rotation=10.0)
    rotated = augment(x, config, _seed(2)).numpy()
    assert rotated.shape == x.shape and not np.allclose(rotated, x, atol=1e-3)
    # the image centre stays put under a pure rotation: a constant image stays constant away from the corners
    flat = augment(tf.ones([4, 32, 32, 3]), config, _seed(2)).numpy()
    np.testing.assert_allclose(flat[:, 8:24, 8:24], 1.0, atol=1e-5)


def test_augment_is_a_function_of_its_seed():
    x, config = _batch(b=32), TrainConfig()
    np.testing.assert_array_equal(augment(x, config, _seed(5, 7)), augment(x, config, _seed(5, 7)))
    assert not np.allclose(augment(x, config, _seed(5, 7)), augment(x, config, _seed(5, 8)))


def test_weight_decay_hits_conv_and_dense_kernels_only():
    """One SGD step (no momentum) with and without decay: kernels differ by lr * wd * w, nothing else differs."""
    keras.utils.set_random_seed(0)
    lr, wd = 0.1, 0.5
    initial = build_model((8, 8, 3), 4, (0.0,) * 3, (1.0,) * 3, width=8, dropout=0.0).get_weights()
    x, labels = _batch(b=8, h=8, w=8), tf.constant(np.arange(8) % 4)
    after = {}
    for decay in (0.0, wd):
        config = TrainConfig(momentum=0.0, weight_decay=decay, dropout=0.0)
        model = build_model((8, 8, 3), 4, (0.0,) * 3, (1.0,) * 3, width=8, dropout=0.0)
        model.set_weights(initial)
        make_train_step(model, make_optimizer(config), config, jit=False)(x, labels, tf.constant(lr))
        after[decay] = [v.numpy() for v in model.get_layer(BODY).trainable_variables]
    start = dict(zip((id(v) for v in model.weights), initial))
    variables = model.get_layer(BODY).trainable_variables
    is_kernel = [v.path.endswith("/kernel") for v in variables]
    assert sum(is_kernel) == 8  # 7 convolutions and the classifier
    for v, kernel, decayed, plain in zip(variables, is_kernel, after[wd], after[0.0]):
        expected = plain - lr * wd * start[id(v)] if kernel else plain
        np.testing.assert_allclose(decayed, expected, atol=1e-6, err_msg=v.path)
